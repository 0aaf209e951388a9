"""``optuna``: hyperparameters tuned by an Optuna study, through its ask/tell interface.

The values on the params are always those of one open trial. ``step()`` tells that trial the
objective values read from feedback (and the closure), asks the next one and commits its values.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.feedback.feedback import Feedback
from graphopt.graph.kinds import is_tensor
from graphopt.graph.node import Node, Param
from graphopt.optim.evaluation import (Counted, EvaluationMemo, current_values, is_evaluation,
                                       point_key)
from graphopt.optim.objective import distinct_feedback, mean_score
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins.manager import PluginManager

if TYPE_CHECKING:  # optuna loads when the optimizer is built: registering the plugin stays light
    import optuna
    from optuna.trial import FrozenTrial, TrialState

DIRECTIONS = ("maximize", "minimize")


class OptunaOptimizer(Counted, Optimizer):
    """Tunes ``int``, ``float`` and ``choice`` params with any Optuna sampler.

    Objectives are named, each maximized or minimized; ``"score"`` is read from feedback (the
    mean score, losses counting as negated scores), any other objective (``"cost"``) comes from
    ``step(closure)``: the closure returns ``{"cost": 0.12}``, or, with one objective, a number or
    a ``Feedback``. ``storage`` (an SQLite/database URL or a journal file path) lets several
    processes share one study. With a ``pruner`` (``"wilcoxon"``), ``should_prune()`` reports
    per-example scores and says when to stop evaluating the current values. A plain closure runs
    once per values: a trial repeating values already run is told their objectives from a memo
    (``evaluations``, ``distinct_points``; ``memo_size=0`` runs the closure every time).
    """

    name = "optuna"
    kinds = frozenset({"int", "float", "choice"})

    def __init__(self, params: ParamsArg, *, sampler: str = "tpe",
                 sampler_options: Mapping[str, Any] | None = None, pruner: str | None = None,
                 pruner_options: Mapping[str, Any] | None = None,
                 objectives: Mapping[str, str] | None = None,
                 storage: str | os.PathLike[str] | None = None, study_name: str = "graphopt",
                 seed: int = 0, memo_size: int = 10_000, plugin_manager: PluginManager | None = None
                 ) -> None:
        from graphopt_optuna.distributions import distribution, space_of
        from graphopt_optuna.samplers import sampler_class

        objectives = dict(objectives) if objectives is not None else {"score": "maximize"}
        _check_objectives(objectives, pruner)
        require_ints("optuna", {"memo_size": (memo_size, 0)})
        sampler_class(sampler)
        super().__init__(params, {}, plugin_manager=plugin_manager)
        self.config: dict[str, Any] = {
            "sampler": sampler, "sampler_options": dict(sampler_options or {}),
            "pruner": pruner, "pruner_options": dict(pruner_options or {}),
            "objectives": objectives, "storage": os.fspath(storage) if storage is not None else None,
            "study_name": study_name, "seed": seed,
        }
        self.objectives = objectives
        self.spaces = {self.param_names[p]: space_of(p) for p in self.params}
        self.distributions = {name: distribution(space) for name, space in self.spaces.items()}
        self._finished_json: dict[int, dict[str, Any]] = {}
        self.memo = EvaluationMemo(memo_size)
        self.study = self._create_study()
        self._trial: optuna.Trial | None = None
        self._pruned = False
        self._next_example = 0
        self._reported = 0

    def check_param(self, name: str, target: Param) -> None:
        from graphopt_optuna.distributions import space_of

        try:
            space_of(target)
        except ValueError as err:
            raise ParamValidationError(f"optimizer 'optuna': param {name!r} {err}", param=target) from err

    # -- stepping -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        """Tell the open trial its objective values, ask the next; no feedback, no change."""
        from optuna.trial import TrialState
        from graphopt_optuna.distributions import from_optuna

        values = self._objective_values(closure)
        if values is None and not self._pruned:
            return {}
        trial = self._current_trial()
        if self._pruned:
            self._tell(trial, state=TrialState.PRUNED)
        else:
            self._tell(trial, values=[values[name] for name in self.objectives])  # type: ignore[index]
        self._trial = self._ask(fixed=None)
        by_name = {name: p for p, name in self.param_names.items()}
        return {by_name[name]: from_optuna(self.spaces[name], value)
                for name, value in self._trial.params.items() if name in by_name}

    def should_prune(self, example: int | None = None) -> bool:
        """Report the score of feedback received since the last call; ``True``: stop evaluating.

        ``example`` identifies the example just scored, so the pruner compares trials example by
        example (Wilcoxon); left out, examples are numbered in the order they are reported.
        Call ``step()`` next either way: a pruned trial is told so, and the next values come.
        """
        trial = self._current_trial()
        fresh = distinct_feedback(self.params)[self._reported:]
        self._reported += len(fresh)
        score = mean_score(fresh)
        if score is None:
            return self._pruned
        step = self._next_example if example is None else example
        trial.report(score, step)
        self._next_example = max(self._next_example, step + 1)
        self._pruned = trial.should_prune()
        return self._pruned

    def zero_feedback(self) -> None:
        super().zero_feedback()
        self._reported = 0

    def best_trials(self) -> list[dict[str, Any]]:
        """Best finished trials (the Pareto front with several objectives): values and objectives."""
        from graphopt_optuna.distributions import from_optuna

        best = []
        for trial in self.study.best_trials:
            if set(trial.params) >= set(self.spaces):
                best.append({"number": trial.number,
                             "values": {n: from_optuna(s, trial.params[n]) for n, s in self.spaces.items()},
                             "objectives": dict(zip(self.objectives, trial.values))})
        return best

    def _objective_values(self, closure: Callable[[], Any] | None) -> dict[str, float] | None:
        if closure is None:
            values: dict[str, float] = {}
        elif is_evaluation(closure):  # a trainer's: its examples change, its cache keeps runs
            values = self._closure_values(closure())
        else:
            key = point_key(current_values(self.params), self.param_names)
            values = dict(self.memo.run(key, lambda: self._closure_values(closure())))
        if "score" in self.objectives and "score" not in values:
            score = mean_score(distinct_feedback(self.params))
            if score is not None:
                values["score"] = score
        if not values:
            return None
        missing = [name for name in self.objectives if name not in values]
        if missing:
            raise OptimizerStepError(f"optimizer 'optuna': no value for objective(s) {', '.join(missing)}; "
                                     f"return them from step(closure)", optimizer=self)
        return values

    def _closure_values(self, result: Any) -> dict[str, float]:
        values: dict[str, float] = {}
        if isinstance(result, Mapping):
            for name, value in result.items():
                if name not in self.objectives:
                    raise OptimizerStepError(f"optimizer 'optuna': closure returned objective {name!r}; "
                                             f"expected {', '.join(self.objectives)}", optimizer=self)
                values[name] = self._number(name, value)
        elif result is not None:
            if len(self.objectives) != 1:
                raise OptimizerStepError(f"optimizer 'optuna' has objectives {', '.join(self.objectives)}: "
                                         f"the closure must return a dict of them, got "
                                         f"{type(result).__name__}", optimizer=self)
            only = next(iter(self.objectives))
            values[only] = self._number(only, result)
        return values

    def _number(self, objective: str, value: Any) -> float:
        if isinstance(value, Node):
            value = value.value
        if isinstance(value, Feedback):
            value = mean_score([value])
        elif is_tensor(value) and value.numel() == 1:
            value = float(value.detach())
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptimizerStepError(f"optimizer 'optuna': objective {objective!r} expects a number, got "
                                     f"{value!r}", optimizer=self)
        return float(value)

    # -- trials -------------------------------------------------------------------------------
    def _current_trial(self) -> optuna.Trial:
        """The open trial, if it holds the params' values; else one opened for those values."""
        from optuna.trial import TrialState
        from graphopt_optuna.distributions import to_optuna

        current = {name: to_optuna(self.spaces[name], p.value) for p, name in self.param_names.items()}
        if self._trial is not None and self._trial.params == current:
            return self._trial
        if self._trial is not None:
            # Its values were never committed (a refused step, values set by hand): not evaluated.
            self._tell(self._trial, state=TrialState.FAIL)
        self._trial = self._ask(fixed=current)
        self._next_example = 0
        return self._trial

    def _ask(self, fixed: dict[str, Any] | None) -> optuna.Trial:
        from graphopt_optuna.samplers import FixedValues

        # The sampler is built once (seeded) and kept, as with raw Optuna: its random state
        # travels in state_dict(), so a restored study continues identically.
        if fixed is not None:
            self.study.sampler = FixedValues(fixed, self.sampler)
        try:
            trial = self.study.ask(self.distributions)
        except ValueError as err:
            raise OptimizerStepError(f"optimizer 'optuna': study {self.study.study_name!r} refused "
                                     f"the params' spaces: {err}", optimizer=self) from err
        finally:
            self.study.sampler = self.sampler
        self._pruned = False
        self._next_example = 0
        return trial

    def _tell(self, trial: optuna.Trial, *, values: list[float] | None = None,
              state: TrialState | None = None) -> None:
        from optuna.trial import TrialState

        if values is not None and any(math.isnan(v) for v in values):
            state, values = TrialState.FAIL, None
        try:
            self.study.tell(trial, values, state=state)
        except (ValueError, RuntimeError) as err:
            raise OptimizerStepError(f"optimizer 'optuna': could not finish trial {trial.number}: {err}",
                                     optimizer=self) from err
        self._trial = None

    def _create_study(self, trials: list[dict[str, Any]] | None = None) -> optuna.Study:
        import optuna
        from graphopt_optuna.samplers import make_pruner, make_sampler
        from graphopt_optuna.storage import open_storage, trial_from_json

        pruner = self.config["pruner"]
        self.sampler: optuna.samplers.BaseSampler = make_sampler(
            self.config["sampler"], self.config["sampler_options"], self.config["seed"])
        study = optuna.create_study(
            storage=open_storage(self.config["storage"]), study_name=self.config["study_name"],
            directions=list(self.objectives.values()), load_if_exists=True, sampler=self.sampler,
            pruner=make_pruner(pruner, self.config["pruner_options"]) if pruner is not None else None)
        directions = [d.name.lower() for d in study.directions]
        if directions != list(self.objectives.values()):
            raise ValueError(f"optimizer 'optuna': study {study.study_name!r} optimizes {directions}, "
                             f"objectives {self.objectives} need {list(self.objectives.values())}")
        if trials:
            study.add_trials([trial_from_json(t) for t in trials])
        return study

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        """Config, the sampler's random state, the open trial and, for an in-memory study only,
        every trial."""
        from graphopt_optuna.random_state import random_states

        in_memory = self.config["storage"] is None
        return {
            "config": self.config,
            "random_states": random_states(self.sampler),
            "trial": self._trial.number if self._trial is not None else None,
            "pruned": self._pruned,
            "next_example": self._next_example,
            "trials": [self._trial_to_json(t) for t in self.study.get_trials(deepcopy=False)]
            if in_memory else None,
            "memo": self.memo.state_dict(),
        }

    def _trial_to_json(self, trial: FrozenTrial) -> dict[str, Any]:
        from graphopt_optuna.storage import trial_to_json

        # A finished trial never changes: written once, not at every checkpoint.
        if not trial.state.is_finished():
            return trial_to_json(trial)
        written = self._finished_json.get(trial.number)
        if written is None:
            written = self._finished_json[trial.number] = trial_to_json(trial)
        return written

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        from graphopt_optuna.random_state import check_random_states

        for key, value in data["config"].items():
            if self.config.get(key) != value:
                raise ParamValidationError(f"optimizer 'optuna': state dict has {key}={value!r}, this "
                                           f"optimizer {key}={self.config.get(key)!r}")
        try:
            check_random_states(self.sampler, data.get("random_states", {}))
        except ValueError as err:
            raise ParamValidationError(f"optimizer 'optuna': state dict does not fit sampler "
                                       f"{self.config['sampler']!r}: {err}") from err

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        import optuna
        from optuna.trial import TrialState
        from graphopt_optuna.random_state import set_random_states

        if data["trials"] is not None:
            self._finished_json = {}
            self.study = self._create_study(trials=data["trials"])
        # A sampler rebuilt from its options, then given the saved random state.
        set_random_states(self.sampler, data.get("random_states", {}))
        self._trial = None
        if data["trial"] is not None:
            frozen = next((t for t in self.study.get_trials(deepcopy=False) if t.number == data["trial"]), None)
            if frozen is not None and frozen.state is TrialState.RUNNING:
                # Optuna's own way to reattach to a running trial by its storage id.
                self._trial = optuna.Trial(self.study, frozen._trial_id)
        self._pruned = bool(data["pruned"])
        self._next_example = int(data["next_example"])
        self._reported = 0
        if "memo" in data:
            self.memo.load_state_dict(data["memo"])


def _check_objectives(objectives: Mapping[str, str], pruner: str | None) -> None:
    if not objectives:
        raise ValueError("optimizer 'optuna' needs at least one objective, e.g. {'score': 'maximize'}")
    for name, direction in objectives.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"optimizer 'optuna': objective {name!r} must be 'maximize' or 'minimize', "
                             f"got {direction!r}")
    if pruner is not None and list(objectives) != ["score"]:
        raise ValueError(f"optimizer 'optuna': pruner {pruner!r} needs the single objective 'score' "
                         f"(per-example scores), got objectives {list(objectives)}")
