"""Optuna samplers and pruners looked up by name, with their options as JSON data."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Mapping

import optuna

# Short names for the samplers and pruners people ask for most; any class name in
# ``optuna.samplers`` / ``optuna.pruners`` (``"QMCSampler"``) works as well.
SAMPLER_ALIASES: dict[str, str] = {
    "tpe": "TPESampler",
    "cmaes": "CmaEsSampler",
    "cma-es": "CmaEsSampler",
    "gp": "GPSampler",
    "nsga2": "NSGAIISampler",
    "nsgaii": "NSGAIISampler",
    "nsga3": "NSGAIIISampler",
    "random": "RandomSampler",
    "qmc": "QMCSampler",
    "grid": "GridSampler",
    "bruteforce": "BruteForceSampler",
}

PRUNER_ALIASES: dict[str, str] = {
    "wilcoxon": "WilcoxonPruner",
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "hyperband": "HyperbandPruner",
    "successive-halving": "SuccessiveHalvingPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}


def sampler_class(name: str) -> type[optuna.samplers.BaseSampler]:
    """The sampler class called ``name`` (an alias such as ``"tpe"`` or an Optuna class name)."""
    return _lookup("sampler", name, SAMPLER_ALIASES, optuna.samplers, optuna.samplers.BaseSampler)


def pruner_class(name: str) -> type[optuna.pruners.BasePruner]:
    """The pruner class called ``name`` (an alias such as ``"wilcoxon"`` or an Optuna class name)."""
    return _lookup("pruner", name, PRUNER_ALIASES, optuna.pruners, optuna.pruners.BasePruner)


def make_sampler(name: str, options: Mapping[str, Any], seed: int) -> optuna.samplers.BaseSampler:
    """A sampler built from its options; ``seed`` is passed when the sampler takes one."""
    cls = sampler_class(name)
    arguments = dict(options)
    if "seed" in inspect.signature(cls).parameters:
        arguments.setdefault("seed", seed)
    return _build("sampler", name, cls, arguments)


def make_pruner(name: str, options: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """A pruner built from its options."""
    return _build("pruner", name, pruner_class(name), dict(options))


def _lookup(what: str, name: str, aliases: Mapping[str, str], module: Any, base: type) -> type:
    classes = {n: c for n, c in vars(module).items()
               if isinstance(c, type) and issubclass(c, base) and not n.startswith("Base")}
    class_name = aliases.get(name.lower(), name)
    if class_name in classes:
        return classes[class_name]
    known = sorted({*aliases, *classes})
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"optimizer 'optuna': no Optuna {what} named {name!r}{hint} available: "
                     f"{', '.join(known)}")


def _build(what: str, name: str, cls: type, arguments: dict[str, Any]) -> Any:
    try:
        return cls(**arguments)
    except (TypeError, ValueError, ImportError) as err:
        raise ValueError(f"optimizer 'optuna': {what} {name!r} ({cls.__name__}) refused options "
                         f"{arguments}: {err}") from err


class FixedValues(optuna.samplers.BaseSampler):
    """Samples exactly ``values``, so a trial can stand for values already set on the params.

    The base sampler's trial hooks still run, so samplers that keep per-trial bookkeeping
    (NSGA-II generations) see this trial as one of theirs.
    """

    def __init__(self, values: Mapping[str, Any], base: optuna.samplers.BaseSampler) -> None:
        self.values = dict(values)
        self.base = base

    def infer_relative_search_space(self, study: optuna.Study, trial: Any) -> dict[str, Any]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: Any, search_space: Any) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: Any, param_name: str,
                           param_distribution: Any) -> Any:
        return self.values[param_name]

    def before_trial(self, study: optuna.Study, trial: Any) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: Any, state: Any, values: Any) -> None:
        self.base.after_trial(study, trial, state, values)
