"""``RunConfig``: a training run described as data (command line, YAML or TOML), and building it.

A workflow is named ``path/to/file.py:name``: a function built from ``@go.op``s, a ``go.Module``
instance, or a ``go.Module`` subclass (instantiated without arguments). Its parameters are the
module-level params, trainable ops and modules of that file. Each optimizer takes the params it
names, or else every param of a kind it accepts that no earlier optimizer took.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graphopt.errors import ParamValidationError
from graphopt.feedback.feedback import Feedback
from graphopt.graph.module import Module
from graphopt.graph.node import Param
from graphopt.graph.op import TracedFunction
from graphopt.llm.ledger import Budget
from graphopt.optim.optimizer import Optimizer
from graphopt.plugins.manager import PluginManager, get_plugin_manager
from graphopt.train.data import Example
from graphopt.train.trainer import Trainer


class OptimizerSpec(BaseModel):
    """One optimizer: its plugin name, the params it owns (default: by kind) and its options."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class RunConfig(BaseModel):
    """Everything ``graphopt run`` needs; stored in the checkpoint so ``graphopt resume`` can rebuild."""

    model_config = ConfigDict(extra="forbid")

    workflow: str
    data: str
    val: str | None = None
    metric: str = "exact"
    optimizers: list[OptimizerSpec]
    model: str | None = None
    epochs: int = 1
    batch_size: int = 8
    seed: int = 0
    concurrency: int = 4
    patience: int | None = None
    eval_every: int | None = None
    max_calls: int | None = None
    max_tokens: int | None = None
    max_usd: float | None = None
    checkpoint: str | None = None
    history: str | None = None
    eval_cache: str | None = None
    target_key: str = "target"


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A YAML (``.yaml``/``.yml``) or TOML (``.toml``) file as a dict."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"config {os.fspath(path)!r}: cannot read it: {err}") from err
    try:
        data = tomllib.loads(text) if file.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as err:
        raise ValueError(f"config {os.fspath(path)!r}: not valid {file.suffix[1:] or 'YAML'}: {err}") from err
    if not isinstance(data, dict):
        raise ValueError(f"config {os.fspath(path)!r}: expects a mapping of settings, got "
                         f"{type(data).__name__}")
    return data


def make_config(data: dict[str, Any]) -> RunConfig:
    """Validate settings, naming the first wrong field; optimizer names may be plain strings."""
    data = dict(data)
    data["optimizers"] = [{"name": o} if isinstance(o, str) else o for o in data.get("optimizers", [])]
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise ValueError(f"run setting {where!r}: {problem['msg'].lower()}") from err
    if not config.optimizers:
        raise ValueError("run settings need at least one optimizer (--optimizer NAME)")
    for field in ("data", "val", "checkpoint", "history", "eval_cache"):
        value = getattr(config, field)
        if value is not None:
            config = config.model_copy(update={field: os.path.abspath(value)})
    path, _, name = config.workflow.partition(":")
    return config.model_copy(update={"workflow": f"{os.path.abspath(path)}:{name}"})


def load_object(spec: str) -> tuple[Any, Any]:
    """The object named by ``file.py:name`` and the module holding it."""
    path, _, name = spec.partition(":")
    if not name or not path.endswith(".py"):
        raise ValueError(f"expects 'path/to/file.py:name', got {spec!r}")
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"{spec!r}: no file {path!r}")
    module_name = f"graphopt_user_{file.stem}"
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != str(file.resolve()):
        loader = importlib.util.spec_from_file_location(module_name, file.resolve())
        module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
        sys.modules[module_name] = module
        sys.path.insert(0, str(file.resolve().parent))
        loader.loader.exec_module(module)  # type: ignore[union-attr]
    if not hasattr(module, name):
        raise ValueError(f"{spec!r}: {path} defines no {name!r}")
    return getattr(module, name), module


def load_workflow(spec: str) -> tuple[Callable[..., Any] | Module, dict[str, Param]]:
    """The workflow and its parameters by name."""
    found, module = load_object(spec)
    if inspect.isclass(found) and issubclass(found, Module):
        found = found()
    if isinstance(found, Module):
        return found, dict(found.named_parameters())
    if not callable(found):
        raise ValueError(f"workflow {spec!r} is a {type(found).__name__}, not a function or go.Module")
    params: dict[str, Param] = {}
    for name, value in vars(module).items():
        if isinstance(value, Param) and value.trainable:
            params[value.name or name] = value
        elif isinstance(value, TracedFunction) and value.code is not None:
            params[value.code.name or f"{name}.code"] = value.code
        elif isinstance(value, Module):
            params.update(value.named_parameters(prefix=name))
    return found, params


def exact_match(example: Example, prediction: Any) -> Feedback:
    """Score 1 when the prediction's text equals the target's, else 0 with a critique."""
    if str(prediction).strip() == str(example.target).strip():
        return Feedback(score=1.0)
    return Feedback(score=0.0, text=f"expected {example.target!r}, got {prediction!r}")


def load_metric(spec: str) -> Callable[..., Any]:
    """``exact``, or a metric function named ``file.py:name``."""
    if spec == "exact":
        return exact_match
    metric, _ = load_object(spec)
    if not callable(metric):
        raise ValueError(f"metric {spec!r} is not callable")
    return metric


def build_optimizers(config: RunConfig, params: dict[str, Param],
                     manager: PluginManager) -> list[Optimizer]:
    """Each optimizer over the params it names, or the unclaimed params of kinds it accepts."""
    claimed: set[str] = set()
    built = []
    for spec in config.optimizers:
        cls = manager.lookup("optimizers", spec.name)
        if spec.params is not None:
            unknown = [n for n in spec.params if n not in params]
            if unknown:
                raise ParamValidationError(f"optimizer {spec.name!r}: unknown params {unknown}; the "
                                           f"workflow has {sorted(params)}")
            names = spec.params
        else:
            names = [n for n, p in params.items() if n not in claimed and p.kind.name in cls.kinds]
        if not names:
            raise ParamValidationError(f"optimizer {spec.name!r} found no params of kinds "
                                       f"{sorted(cls.kinds)}; the workflow has "
                                       f"{ {n: p.kind.name for n, p in params.items()} }")
        options = dict(spec.options)
        if config.model and "llm" in inspect.signature(cls).parameters and "llm" not in options:
            options["llm"] = config.model
        built.append(cls({n: params[n] for n in names}, plugin_manager=manager, **options))
        claimed.update(names)
    return built


def build_trainer(config: RunConfig, *, resume: str | os.PathLike[str] | None = None,
                  quiet: bool = False, plugin_manager: PluginManager | None = None) -> Trainer:
    """The ``Trainer`` a config describes, recording the config in its checkpoints."""
    manager = plugin_manager or get_plugin_manager()
    workflow, params = load_workflow(config.workflow)
    limits = (config.max_calls, config.max_tokens, config.max_usd)
    budget = Budget(max_calls=config.max_calls, max_tokens=config.max_tokens, max_usd=config.max_usd) \
        if any(v is not None for v in limits) else None
    return Trainer(workflow, config.data, val=config.val, metric=load_metric(config.metric),
                   optimizers=build_optimizers(config, params, manager), epochs=config.epochs,
                   batch_size=config.batch_size, seed=config.seed, concurrency=config.concurrency,
                   patience=config.patience, eval_every=config.eval_every, budget=budget,
                   checkpoint=config.checkpoint, history=config.history, resume=resume,
                   cache=config.eval_cache, quiet=quiet, target_key=config.target_key,
                   config=config.model_dump(), plugin_manager=manager)
