"""``Optimizer``: the base every optimizer plugin builds on.

A step proposes new values, validates every one against its parameter, scores the proposal
when the optimizer is gated and a closure is given (the acceptance gate), then commits them
all — or none, raising ``OptimizerStepError`` with each parameter unchanged.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, ClassVar, Iterable, Mapping

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.feedback.propagators import ParamFeedback, received
from graphopt.graph.module import Module
from graphopt.graph.node import Param
from graphopt.graph.op import BoundTracedFunction, TracedFunction
from graphopt.optim.evaluation import Evaluation, assigned
from graphopt.optim.objective import to_loss
from graphopt.plugins.manager import PluginManager, get_plugin_manager

ParamsArg = Any  # Param | TracedFunction | Module | iterable of those | list of group dicts

ACCEPT_MODES = ("improve", "better", "improve_val", "always")
"""``accept`` values: keep a proposal not worse on the closure's examples; only a strictly better
one (a tie keeps the current values); one also not worse on the evaluation's whole pool (the
trainer's validation set); or every valid proposal."""

GATED_KINDS = frozenset({"text", "code", "demos"})
"""Optimizers of these kinds write values no gradient vouches for: gated unless they say not."""


class Rejection:
    """Why a gated proposal was not kept: the scores before and after, and where they were taken."""

    __slots__ = ("reason", "before", "after", "params")

    def __init__(self, reason: str, before: float, after: float, params: list[str]) -> None:
        self.reason = reason
        self.before = before
        self.after = after
        self.params = params

    def __repr__(self) -> str:
        return f"Rejection({self.reason!r})"


def check_accept(accept: str, *, option: str = "accept") -> str:
    """``accept`` if it is one of ``ACCEPT_MODES``, else ``ValueError`` naming the option."""
    if accept not in ACCEPT_MODES:
        raise ValueError(f"{option} expects one of {', '.join(map(repr, ACCEPT_MODES))}, got {accept!r}")
    return accept


class Optimizer:
    """Base class: ordered ``param_groups``, per-parameter ``state``, all-or-nothing ``step()``.

    Subclasses set ``name`` and ``kinds`` and implement ``propose()``; those that update in place
    (``torch``) override ``step()``. Parameters are referred to by name in ``state_dict()``.

    The acceptance gate: an optimizer is *gated* when ``gated`` is ``True``, or when it is
    ``None`` (the default) and it handles text, code or demos (``GATED_KINDS``). A gated
    optimizer's ``step(closure)`` scores the current values (memoized per closure and values)
    and the proposal with the closure, and commits only if the proposal is not worse (a NaN or
    infinite score is the worst); otherwise nothing changes, ``last_rejection`` says why and
    ``on_rejected(proposal, rejection)`` is called, a hook for optimizers that learn from
    scored candidates (opro's history). ``accept`` (``ACCEPT_MODES``; an ``Evaluation`` may carry
    its own, as the trainer's does) chooses the rule; ``"always"`` keeps every valid proposal.
    A gated optimizer implements ``propose()`` and leaves ``step()`` to the base.
    """

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = frozenset()
    gated: ClassVar[bool | None] = None
    accept: str = "improve"

    def __init__(self, params: ParamsArg, defaults: Mapping[str, Any], *,
                 plugin_manager: PluginManager | None = None) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Param, dict[str, Any]] = {}
        self.param_names: dict[Param, str] = {}
        self.plugin_manager = plugin_manager or get_plugin_manager()
        self.last_rejection: Rejection | None = None
        self.last_gate: tuple[float, float] | None = None  # the gate's (current, proposal) scores
        self._scored: tuple[Any, str, float] | None = None  # (closure, values key, score)
        groups = list(params) if _is_group_list(params) else [{"params": params}]
        if not groups:
            raise ParamValidationError(f"optimizer {self.name!r} got an empty parameter list")
        for group in groups:
            self.add_param_group(group)

    # -- parameters ---------------------------------------------------------------------------
    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group: ``{"params": ..., **options}``; options default to the optimizer's."""
        named = list(_expand(group["params"]))
        if not named:
            raise ParamValidationError(f"optimizer {self.name!r}: a parameter group is empty")
        taken = set(self.param_names.values())
        for name, target in named:
            if name is None:
                raise ParamValidationError(
                    f"optimizer {self.name!r}: param {target!r} has no name; create it with "
                    f"go.param(..., name=...) or hold it in a go.Module", param=target)
            if target in self.param_names or name in taken:
                raise ParamValidationError(
                    f"optimizer {self.name!r}: param {name!r} appears twice", param=target)
            if self.kinds and target.kind.name not in self.kinds:
                raise ParamValidationError(
                    f"optimizer {self.name!r} cannot optimize param {name!r} of kind "
                    f"{target.kind.name!r}; it accepts: {', '.join(sorted(self.kinds))}", param=target)
            self.check_param(name, target)
            taken.add(name)
        for name, target in named:
            self.param_names[target] = name
        options = {k: v for k, v in group.items() if k != "params"}
        self.param_groups.append({**self.defaults, **options, "params": [p for _, p in named]})

    def check_param(self, name: str, target: Param) -> None:
        """Refuse a parameter this optimizer cannot handle beyond its kind (override to add checks)."""

    @property
    def params(self) -> list[Param]:
        """Every parameter, in group order (``param_names`` is filled in that order)."""
        return list(self.param_names)

    def feedback(self) -> dict[Param, list[ParamFeedback]]:
        """Feedback received by each parameter since the last ``zero_feedback``."""
        return {p: received(p) for p in self.params}

    def zero_feedback(self) -> None:
        """Forget accumulated feedback (and torch gradients) on every parameter."""
        for target in self.param_names:  # not self.params: no list copy per training step
            target.feedback.clear()
            if target.kind.name == "tensor" and target.value.grad is not None:
                target.value.grad = None

    # -- stepping -----------------------------------------------------------------------------
    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        """New values for some parameters, from feedback and state.

        Must leave parameter values as they were (``step()`` commits); may advance the
        optimizer's own state (counters, random generators, history).
        """
        raise NotImplementedError

    @property
    def is_gated(self) -> bool:
        """Whether ``step(closure)`` scores a proposal before keeping it (see the class docstring)."""
        return self.gated if self.gated is not None else bool(self.kinds & GATED_KINDS)

    def step(self, closure: Callable[[], Any] | None = None) -> dict[str, Any]:
        """Propose, validate every value, gate, then commit all of them; returns what was committed.

        A proposal with any invalid value raises ``OptimizerStepError`` and changes nothing; a
        gated proposal scoring worse than the current values is rejected (returns ``{}``).
        """
        self.last_rejection = None
        self.last_gate = None
        self._call_hook("graphopt_before_step", optimizer=self, params=self.params)
        proposal = self.propose(closure)
        checked = self.validate(proposal)
        mode = check_accept(getattr(closure, "accept", None) or self.accept)
        score = None
        if checked and closure is not None and self.is_gated and mode != "always":
            rejection, score = self.judge(checked, closure, mode)
            self.last_gate = (self._current_score(closure), score)
            if rejection is not None:
                self.last_rejection = rejection
                self.on_rejected(proposal, rejection)
                return {}
        committed = self.commit(proposal)
        if score is not None:
            self._scored = (closure, self._values_key(), score)
        if committed:
            self._call_hook("graphopt_after_step", optimizer=self, params=self.params, committed=committed)
        return committed

    def judge(self, values: Mapping[Param, Any], closure: Callable[[], Any], mode: str = "improve"
              ) -> tuple[Rejection | None, float]:
        """Score ``values`` against the current ones with ``closure``: (a rejection or None, score).

        ``"improve_val"`` also compares them on every example of an ``Evaluation``'s pool.
        """
        names = sorted(self.param_names[p] for p in values if p in self.param_names)
        before = self._current_score(closure)
        with assigned(values):
            after = _score_of(closure(), self)
        if after == -math.inf or after < before or (mode == "better" and after <= before):
            relation = "below" if after < before or after == -math.inf else "no better than"
            return Rejection(f"proposal scored {after:.6g} on the step's examples, {relation} the "
                             f"current {before:.6g}", before, after, names), after
        if mode == "improve_val" and isinstance(closure, Evaluation) and closure.size:
            indices = list(range(closure.size))
            pool_before = _mean(closure.scores({}, indices))
            pool_after = _mean(closure.scores(values, indices))
            if pool_after == -math.inf or pool_after < pool_before:
                return Rejection(f"proposal scored {pool_after:.6g} on validation, below the current "
                                 f"{pool_before:.6g}", pool_before, pool_after, names), after
        return None, after

    def _current_score(self, closure: Callable[[], Any]) -> float:
        key = self._values_key()
        if self._scored is not None and self._scored[0] is closure and self._scored[1] == key:
            return self._scored[2]
        score = _score_of(closure(), self)
        self._scored = (closure, key, score)
        return score

    def _values_key(self) -> str:
        return json.dumps([p.to_json() for p in self.params], sort_keys=True, default=repr)

    def on_rejected(self, proposal: Mapping[Param, Any], rejection: Rejection) -> None:
        """Called when the gate rejects ``proposal`` (nothing was assigned); override to learn from it."""

    def validate(self, proposal: Mapping[Param, Any]) -> dict[Param, Any]:
        """Every proposed value validated, or ``OptimizerStepError`` naming each problem."""
        errors: dict[str, str] = {}
        checked: dict[Param, Any] = {}
        for target, value in proposal.items():
            name = self.param_names.get(target)
            if name is None:
                errors[target.label] = "not a parameter of this optimizer"
                continue
            try:
                checked[target] = target.validate(value)
            except ParamValidationError as err:
                errors[name] = str(err)
        if errors:
            raise OptimizerStepError(
                f"optimizer {self.name!r} refused the step, nothing changed: "
                + "; ".join(f"{n}: {e}" for n, e in errors.items()), optimizer=self, errors=errors)
        return checked

    def commit(self, proposal: Mapping[Param, Any]) -> dict[str, Any]:
        """Validate every proposed value, then assign them all (or raise, assigning none)."""
        checked = self.validate(proposal)
        previous = {t: t.value for t in checked}
        try:
            for target, value in checked.items():
                target.assign(value)
        except Exception as err:
            for target, value in previous.items():
                target.value = value
            raise OptimizerStepError(f"optimizer {self.name!r}: commit failed, rolled back: {err}",
                                     optimizer=self) from err
        return {self.param_names[t]: t.value for t in checked}

    def _call_hook(self, hook_name: str, **kwargs: Any) -> None:
        caller = getattr(self.plugin_manager.hook, hook_name)
        if caller.get_hookimpls():
            caller(**kwargs)

    # -- state --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON data: options and param names per group, per-param state, optimizer-wide state."""
        groups = []
        for group in self.param_groups:
            options = {k: v for k, v in group.items() if k != "params"}
            names = [self.param_names[p] for p in group["params"]]
            groups.append({**options, "params": names,
                           "kinds": {self.param_names[p]: p.kind.name for p in group["params"]}})
        state = {self.param_names[p]: self.param_state_to_json(p, s) for p, s in self.state.items()}
        data = {"optimizer": self.name, "param_groups": groups, "state": state,
                "extra": self.extra_state_dict()}
        json.dumps(data)  # fail here, not at save time, if a subclass stored non-JSON state
        return data

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Check optimizer name, group count, param names, kinds and extra state; then restore."""
        if state_dict.get("optimizer") != self.name:
            raise ParamValidationError(f"state dict is for optimizer {state_dict.get('optimizer')!r}, "
                                       f"not {self.name!r}")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ParamValidationError(f"optimizer {self.name!r}: state dict has {len(groups)} param "
                                       f"groups, this optimizer has {len(self.param_groups)}")
        by_name = {n: p for p, n in self.param_names.items()}
        for saved, group in zip(groups, self.param_groups):
            ours = [self.param_names[p] for p in group["params"]]
            if saved["params"] != ours:
                raise ParamValidationError(f"optimizer {self.name!r}: state dict params "
                                           f"{saved['params']} do not match {ours}")
            for name, kind in saved.get("kinds", {}).items():
                if by_name[name].kind.name != kind:
                    raise ParamValidationError(f"optimizer {self.name!r}: param {name!r} is of kind "
                                               f"{by_name[name].kind.name!r}, state dict says {kind!r}")
        unknown = [n for n in state_dict["state"] if n not in by_name]
        if unknown:
            raise ParamValidationError(f"optimizer {self.name!r}: state for unknown params {unknown}")
        restored = {by_name[n]: self.param_state_from_json(by_name[n], s)
                    for n, s in state_dict["state"].items()}
        self.check_extra_state_dict(state_dict.get("extra", {}))
        for saved, group in zip(groups, self.param_groups):
            group.update({k: v for k, v in saved.items() if k not in ("params", "kinds")})
        self.state = restored
        self.load_extra_state_dict(state_dict.get("extra", {}))

    def param_state_to_json(self, target: Param, state: dict[str, Any]) -> Any:
        return state

    def param_state_from_json(self, target: Param, data: Any) -> dict[str, Any]:
        return dict(data)

    def extra_state_dict(self) -> dict[str, Any]:
        """Optimizer-wide state (history, RNG, counters) as JSON data."""
        return {}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        """Refuse ``data`` (raise ``ParamValidationError``) before ``load_state_dict`` assigns anything."""

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        """Restore what ``extra_state_dict`` wrote (already accepted by ``check_extra_state_dict``)."""

    def require_space(self, name: str, target: Param) -> None:
        """For ``check_param``: refuse a number without an ``Int``/``Float``/``Choice`` space."""
        if target.space is None:
            raise ParamValidationError(f"optimizer {self.name!r}: param {name!r} needs a space "
                                       f"(go.Int, go.Float or go.Choice) to search in", param=target)

    def __repr__(self) -> str:
        names = ", ".join(self.param_names.values())
        return f"<optimizer {self.name} params=[{names}]>"


def _score_of(result: Any, optimizer: Optimizer) -> float:
    """A closure's result as a score to maximize; NaN and infinities count as the worst."""
    try:
        score = -to_loss(result)
    except ValueError as err:
        raise OptimizerStepError(f"optimizer {optimizer.name!r}: the acceptance gate needs a score, "
                                 f"loss or number from the closure ({err}); or use accept='always'",
                                 optimizer=optimizer) from err
    return score if math.isfinite(score) else -math.inf


def _mean(values: list[float]) -> float:
    finite = [v if math.isfinite(v) else -math.inf for v in values]
    return sum(finite) / len(finite) if finite else -math.inf


def require_ints(optimizer: str, options: Mapping[str, tuple[Any, int]]) -> None:
    """``ValueError`` naming the option unless each ``(value, least)`` is an int >= least."""
    for option, (value, least) in options.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"optimizer {optimizer!r}: {option} expects an int >= {least}, "
                             f"got {value!r}")


def _is_group_list(params: ParamsArg) -> bool:
    return isinstance(params, (list, tuple)) and bool(params) and all(isinstance(g, dict) for g in params)


def _expand(params: ParamsArg) -> Iterable[tuple[str | None, Param]]:
    if isinstance(params, (set, frozenset)):
        raise ParamValidationError("optimizer params must be an ordered sequence, not a set: "
                                   "a set's order changes from run to run")
    if isinstance(params, Param):
        yield params.name, params
    elif isinstance(params, (TracedFunction, BoundTracedFunction)):
        if params.code is None:
            raise ParamValidationError(f"op {params!r} is not trainable; use @go.op(trainable=True)")
        yield params.code.name, params.code
    elif isinstance(params, Module):
        for name, target in params.named_parameters():
            yield name, target
    elif isinstance(params, Mapping):
        for name, target in params.items():
            if not isinstance(target, Param):
                raise ParamValidationError(f"optimizer param {name!r} is a {type(target).__name__}, "
                                           f"expected a graphopt Param")
            yield name, target
    elif isinstance(params, Iterable) and not isinstance(params, (str, bytes)):
        for item in params:
            yield from _expand(item)
    else:
        raise ParamValidationError(f"cannot optimize {type(params).__name__} {params!r}; expected "
                                   f"Param, trainable op, Module, or a list of them")
