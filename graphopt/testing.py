"""Conformance checks every optimizer plugin must pass, for use in the plugin's own tests.

Subclass ``OptimizerConformance`` in a test module and pytest runs each check as a test::

    from graphopt.testing import OptimizerConformance

    class TestMineConformance(OptimizerConformance):
        optimizer = "mine"          # the name your graphopt_optimizers() class registers
        config = {"seed": 0}        # keyword arguments for go.optimizer("mine", params, ...)

or call ``check_optimizer("mine", config=...)`` (or one ``check_*`` function) from any test.
A failed check raises ``ConformanceError`` (an ``AssertionError``) saying what was expected.

The checks drive the optimizer the way a user does: score feedback (plus a torch loss when
tensors are optimized) through ``go.backward``, then ``step(closure)`` with a closure returning
the same score as a ``Feedback``, then ``zero_feedback()``.
"""

from __future__ import annotations

import json
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.feedback.backward import backward
from graphopt.feedback.feedback import Feedback
from graphopt.graph.kinds import CodeKind, NumberKind, SpaceKind
from graphopt.graph.node import Param
from graphopt.graph.op import op
from graphopt.graph.space import Choice, Float, Int
from graphopt.optim.optimizer import Optimizer
from graphopt.optim.registry import optimizer as build_optimizer
from graphopt.plugins.manager import PluginManager

KINDS: tuple[str, ...] = ("text", "code", "int", "float", "choice", "tensor", "object")
"""The parameter kinds graphopt knows; each check tries one sample parameter of each."""

MakeParam = Callable[[str, str], Param]


class ConformanceError(AssertionError):
    """An optimizer broke the contract every graphopt optimizer keeps."""


def sample_param(kind: str, name: str) -> Param:
    """A typical parameter of ``kind`` called ``name`` (hyperparameters inside a space)."""
    samples: dict[str, Callable[[], Param]] = {
        "text": lambda: Param("Answer the question briefly.", name=name),
        "code": lambda: Param("def double(x):\n    return 2 * x\n", name=name,
                              kind=CodeKind("double", ("x",))),
        "int": lambda: Param(3, name=name, space=Int(0, 10)),
        "float": lambda: Param(0.5, name=name, space=Float(0.0, 1.0)),
        "choice": lambda: Param("b", name=name, space=Choice(["a", "b", "c"])),
        "tensor": lambda: Param(torch.zeros(3, requires_grad=True), name=name),
        "object": lambda: Param({"examples": [1, 2]}, name=name),
    }
    if kind not in samples:
        raise ValueError(f"no sample parameter of kind {kind!r}; expected one of {', '.join(KINDS)} "
                         f"(pass make_param for other kinds)")
    return samples[kind]()


def new_value(target: Param) -> Any:
    """A valid value for ``target`` that differs from its current one where the kind allows."""
    kind, value = target.kind, target.value
    if isinstance(kind, SpaceKind):
        space = kind.space
        if isinstance(space, Choice):
            return next((o for o in space.options if o != value), value)
        return space.low if value != space.low else space.high  # type: ignore[attr-defined]
    if kind.name == "tensor":
        return value.detach() + 1
    if isinstance(kind, NumberKind):
        return value + 1
    if kind.name in ("text", "code"):
        return value + "\n# revised\n" if kind.name == "code" else value + " (revised)"
    return {"revised": True}


def invalid_value(target: Param) -> Any:
    """A value ``target.validate`` refuses."""
    kind, value = target.kind, target.value
    if isinstance(kind, SpaceKind) and not isinstance(kind.space, Choice):
        return kind.space.high + 1  # type: ignore[attr-defined]
    if kind.name == "tensor":
        return torch.zeros(*value.shape, 2, dtype=value.dtype)
    if kind.name in ("text", "code"):
        return 42
    return object()


# -- the checks -------------------------------------------------------------------------------
def check_kinds(optimizer: str, *, config: Mapping[str, Any] | None = None,
                plugin_manager: PluginManager | None = None, make_param: MakeParam = sample_param) -> None:
    """Accepts a parameter of each declared kind; refuses any other with ``ParamValidationError``
    naming the parameter, even beside accepted ones."""
    manager = plugin_manager or default_plugin_manager()
    declared = _declared_kinds(optimizer, manager)
    accepted = []
    for kind in KINDS:
        target = make_param(kind, f"{kind}_param")
        if kind in declared:
            try:
                _build(optimizer, [target], config, manager)
            except Exception as err:
                raise ConformanceError(f"optimizer {optimizer!r} declares kind {kind!r} but refused "
                                       f"{target!r}: {type(err).__name__}: {err}") from err
            accepted.append(make_param(kind, f"{kind}_accepted"))
    for kind in KINDS:
        if kind in declared:
            continue
        target = make_param(kind, f"{kind}_param")
        for params in ([target], [*accepted, target]):
            _expect_refusal(optimizer, params, target, config, manager)


def check_state_dict_round_trip(optimizer: str, *, config: Mapping[str, Any] | None = None,
                                plugin_manager: PluginManager | None = None,
                                make_param: MakeParam = sample_param, rounds: int = 3) -> None:
    """``state_dict()`` survives ``json.dumps``/``loads``; a fresh optimizer loading it reports the
    same state and then, step by step, proposes the same values as the original (so an optimizer
    whose proposals depend on state it never saves fails)."""
    manager = plugin_manager or default_plugin_manager()
    declared = _declared_kinds(optimizer, manager)
    original_params = params_for(declared, make_param)
    original = _build(optimizer, original_params, config, manager)
    drive(original, original_params, rounds)
    saved = original.state_dict()
    try:
        text = json.dumps(saved, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise ConformanceError(f"optimizer {optimizer!r}: state_dict() is not JSON data: {err}") from err
    restored_params = params_for(declared, make_param)
    for source, target in zip(original_params, restored_params):
        target.assign(source.value.detach().clone() if isinstance(source.value, torch.Tensor) else source.value)
    restored = _build(optimizer, restored_params, config, manager)
    restored.load_state_dict(json.loads(text))
    if json.dumps(restored.state_dict(), sort_keys=True) != text:
        raise ConformanceError(f"optimizer {optimizer!r}: state_dict() after load_state_dict() differs "
                               f"from the one loaded")
    # Compared after every step, not only at the end: values that reach a bound agree again
    # however different the steps were, hiding state that was never saved.
    for step in range(1, rounds + 1):
        drive(original, original_params, 1)
        drive(restored, restored_params, 1)
        if snapshot(original_params) != snapshot(restored_params):
            raise ConformanceError(f"optimizer {optimizer!r}: after load_state_dict() step {step} with the "
                                   f"same feedback led to {snapshot(restored_params)}, the original to "
                                   f"{snapshot(original_params)}: state that changes proposals must be "
                                   f"in state_dict()")


def check_step_without_feedback(optimizer: str, *, config: Mapping[str, Any] | None = None,
                                plugin_manager: PluginManager | None = None,
                                make_param: MakeParam = sample_param) -> None:
    """``step()`` with no feedback changes no value and no state: a no-op, or ``OptimizerStepError``."""
    manager = plugin_manager or default_plugin_manager()
    params = params_for(_declared_kinds(optimizer, manager), make_param)
    opt = _build(optimizer, params, config, manager)
    for warmed in (False, True):
        if warmed:
            drive(opt, params, 2)
        values, state = snapshot(params), json.dumps(opt.state_dict(), sort_keys=True)
        try:
            committed = opt.step()
        except OptimizerStepError:
            committed = None
        if committed:
            raise ConformanceError(f"optimizer {optimizer!r}: step() without feedback committed {committed}")
        if snapshot(params) != values:
            raise ConformanceError(f"optimizer {optimizer!r}: step() without feedback changed values "
                                   f"{values} to {snapshot(params)}")
        if json.dumps(opt.state_dict(), sort_keys=True) != state:
            raise ConformanceError(f"optimizer {optimizer!r}: step() without feedback changed its state")


def check_all_or_nothing_commit(optimizer: str, *, config: Mapping[str, Any] | None = None,
                                plugin_manager: PluginManager | None = None,
                                make_param: MakeParam = sample_param) -> None:
    """A proposal with one invalid value raises ``OptimizerStepError`` naming that parameter and
    leaves every parameter unchanged, through ``commit()`` and through ``step()``."""
    manager = plugin_manager or default_plugin_manager()
    params = params_for(_declared_kinds(optimizer, manager), make_param)
    opt = _build(optimizer, params, config, manager)
    bad = params[-1]
    proposal = {p: new_value(p) for p in params[:-1]}
    proposal[bad] = invalid_value(bad)
    values = snapshot(params)
    _expect_refused(optimizer, opt, bad, params, values, _attempt(lambda: opt.commit(proposal)), "commit()")

    proposed = []

    def propose(closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        proposed.append(True)
        return proposal

    _give_feedback(params)
    opt.propose = propose  # type: ignore[method-assign]
    outcome = _attempt(lambda: opt.step(lambda: Feedback(score=objective(params))))
    if not proposed:
        # An optimizer with its own step() that never proposes (torch updates tensors in place)
        # commits nothing through this path; commit() above is the contract it shares.
        return
    _expect_refused(optimizer, opt, bad, params, values, outcome, "step()")


def check_optimizer(optimizer: str, *, config: Mapping[str, Any] | None = None,
                    plugin_manager: PluginManager | None = None, make_param: MakeParam = sample_param) -> None:
    """Every conformance check, in order."""
    for check in (check_kinds, check_state_dict_round_trip, check_step_without_feedback,
                  check_all_or_nothing_commit):
        check(optimizer, config=config, plugin_manager=plugin_manager, make_param=make_param)


class OptimizerConformance:
    """Base class for a plugin's test module: each conformance check becomes a pytest test.

    Set ``optimizer`` and ``config``; override ``plugin_manager`` to register a plugin that is
    not installed, ``make_param`` for kinds beyond ``KINDS`` or params your optimizer needs.
    """

    optimizer: ClassVar[str] = ""
    config: ClassVar[Mapping[str, Any]] = {}

    def plugin_manager(self) -> PluginManager:
        return default_plugin_manager()

    def make_param(self, kind: str, name: str) -> Param:
        return sample_param(kind, name)

    def _arguments(self) -> dict[str, Any]:
        return {"config": self.config, "plugin_manager": self.plugin_manager(),
                "make_param": self.make_param}

    def test_accepts_declared_kinds_and_refuses_others(self) -> None:
        check_kinds(self.optimizer, **self._arguments())

    def test_state_dict_round_trips_through_json(self) -> None:
        check_state_dict_round_trip(self.optimizer, **self._arguments())

    def test_step_without_feedback_changes_nothing(self) -> None:
        check_step_without_feedback(self.optimizer, **self._arguments())

    def test_commit_is_all_or_nothing(self) -> None:
        check_all_or_nothing_commit(self.optimizer, **self._arguments())


# -- helpers the checks share -----------------------------------------------------------------
def default_plugin_manager() -> PluginManager:
    """A fresh manager holding the built-ins and every installed ``graphopt`` entry point."""
    manager = PluginManager()
    manager.load_builtins()
    manager.load_entrypoints()
    return manager


def params_for(kinds: Sequence[str] | frozenset[str], make_param: MakeParam = sample_param) -> list[Param]:
    """Two parameters of each of ``kinds`` known to ``KINDS`` order, then of any other kind."""
    ordered = [k for k in KINDS if k in kinds] + sorted(k for k in kinds if k not in KINDS)
    return [make_param(kind, f"{kind}_{suffix}") for kind in ordered for suffix in ("a", "b")]


def objective(params: Sequence[Param]) -> float:
    """A deterministic score of the params' values, higher for values nearer a fixed target."""
    total = 0.0
    for target in params:
        value, kind = target.value, target.kind
        if isinstance(value, torch.Tensor):
            total -= float(((value.detach().double() - 1) ** 2).sum())
        elif isinstance(kind, SpaceKind) and isinstance(kind.space, Choice):
            total += kind.space.options.index(value) / len(kind.space.options)
        elif isinstance(kind, SpaceKind):
            total -= (kind.space.to_unit(value) - 0.3) ** 2  # type: ignore[attr-defined]
        elif isinstance(value, (int, float)):
            total -= (float(value) - 1) ** 2
        else:
            total -= abs(len(json.dumps(target.to_json())) - 40) / 40
    return total


def drive(opt: Optimizer, params: Sequence[Param], rounds: int) -> None:
    """``rounds`` times: feedback through ``backward``, ``step(closure)``, ``zero_feedback()``."""
    for _ in range(rounds):
        _give_feedback(params)
        opt.step(lambda: Feedback(score=objective(params)))
        opt.zero_feedback()


def snapshot(params: Sequence[Param]) -> list[Any]:
    """The params' values as JSON data, for comparing."""
    return [target.to_json() for target in params]


@op
def _evaluate(*values: Any) -> float:
    return 0.0


def _give_feedback(params: Sequence[Param]) -> None:
    tensors = [p.value for p in params if isinstance(p.value, torch.Tensor) and p.value.requires_grad]
    loss = sum(((t - 1) ** 2).sum() for t in tensors) if tensors else None
    backward(_evaluate(*params), Feedback(score=objective(params), loss=loss))


def _declared_kinds(optimizer: str, manager: PluginManager) -> frozenset[str]:
    declared = manager.lookup("optimizers", optimizer).kinds
    if not isinstance(declared, frozenset) or not declared or not all(isinstance(k, str) for k in declared):
        raise ConformanceError(f"optimizer {optimizer!r}: kinds must be a non-empty frozenset of kind "
                               f"names, got {declared!r}")
    return declared


def _build(optimizer: str, params: list[Param], config: Mapping[str, Any] | None,
           manager: PluginManager) -> Optimizer:
    return build_optimizer(optimizer, params, plugin_manager=manager, **dict(config or {}))


def _expect_refusal(optimizer: str, params: list[Param], target: Param,
                    config: Mapping[str, Any] | None, manager: PluginManager) -> None:
    try:
        _build(optimizer, params, config, manager)
    except ParamValidationError as err:
        if target.name not in str(err) or err.param is not target:
            raise ConformanceError(f"optimizer {optimizer!r} refused kind {target.kind.name!r} without "
                                   f"naming param {target.name!r} (message and .param): {err}") from err
        return
    except Exception as err:
        raise ConformanceError(f"optimizer {optimizer!r} refused kind {target.kind.name!r} with "
                               f"{type(err).__name__}, expected ParamValidationError: {err}") from err
    raise ConformanceError(f"optimizer {optimizer!r} accepted param {target.name!r} of undeclared "
                           f"kind {target.kind.name!r}")


def _attempt(action: Callable[[], Any]) -> OptimizerStepError | None:
    try:
        action()
    except OptimizerStepError as err:
        return err
    return None


def _expect_refused(optimizer: str, opt: Optimizer, bad: Param, params: Sequence[Param],
                    values: list[Any], outcome: OptimizerStepError | None, how: str) -> None:
    name = opt.param_names[bad]
    if outcome is None:
        raise ConformanceError(f"optimizer {optimizer!r}: {how} accepted a proposal holding an invalid "
                               f"value for {name!r}")
    if name not in outcome.errors:
        raise ConformanceError(f"optimizer {optimizer!r}: {how} refusal does not name param {name!r} "
                               f"in .errors: {outcome.errors}") from outcome
    if snapshot(params) != values:
        raise ConformanceError(f"optimizer {optimizer!r}: a refused {how} changed values {values} to "
                               f"{snapshot(params)}")
