"""Before a run starts: its parameters by name, its cache namespace and its checked options.

Shared by ``Trainer`` and ``go.evaluate``, which build their ``Runner`` the same way.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from graphopt.errors import ParamValidationError
from graphopt.graph.module import Module
from graphopt.graph.node import Param
from graphopt.optim.optimizer import Optimizer
from graphopt.train.identity import code_identity

STEP_ERROR_MODES = ("skip", "raise")


def collect_params(workflow: Any, optimizers: Sequence[Optimizer]) -> dict[str, Param]:
    """Every parameter by name: a module's own names first, then each optimizer's."""
    found: dict[str, Param] = {}
    owner = workflow if isinstance(workflow, Module) else getattr(workflow, "__self__", None)
    if isinstance(owner, Module):
        found.update(owner.named_parameters())
    known = {id(p) for p in found.values()}
    claimed: dict[int, str] = {}
    for opt in optimizers:
        for target, name in opt.param_names.items():
            if id(target) in claimed:
                raise ParamValidationError(f"param {name!r} is owned by optimizers {claimed[id(target)]!r} "
                                           f"and {opt.name!r}; give each param to one optimizer",
                                           param=target)
            claimed[id(target)] = opt.name
            if id(target) in known:
                continue
            if name in found:
                raise ParamValidationError(f"two different params are named {name!r}; names must be "
                                           f"unique in a run", param=target)
            found[name] = target
            known.add(id(target))
    return found


def default_namespace(workflow: Callable[..., Any], metric: Callable[..., Any]) -> str:
    """Names the evaluation cache entries of one workflow judged by one metric: names and code."""
    return f"{code_identity(workflow)}|{code_identity(metric)}"


def check_options(**options: Any) -> None:
    """``ValueError`` naming the first option whose value has the wrong type or range."""
    def integer(name: str, least: int, optional: bool = False) -> None:
        value = options[name]
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            expected = f"an int >= {least}" + (" or None" if optional else "")
            raise ValueError(f"{name} expects {expected}, got {value!r}")

    def number(name: str, least: float | None = None) -> None:
        value = options[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (least is not None and value < least):
            expected = "a finite number" + (f" >= {least:g}" if least is not None else "")
            raise ValueError(f"{name} expects {expected}, got {value!r}")

    integer("epochs", 0)
    integer("batch_size", 1)
    integer("concurrency", 1)
    if isinstance(options["seed"], bool) or not isinstance(options["seed"], int):
        raise ValueError(f"seed expects an int, got {options['seed']!r}")
    integer("patience", 1, optional=True)
    integer("eval_every", 1, optional=True)
    integer("max_evaluations", 1, optional=True)
    number("min_delta", 0.0)
    number("error_score")
    for flag in ("quiet", "restore_best"):
        if not isinstance(options[flag], bool):
            raise ValueError(f"{flag} expects True or False, got {options[flag]!r}")
    if not isinstance(options["target_key"], str):
        raise ValueError(f"target_key expects a str, got {options['target_key']!r}")
    if options["on_step_error"] not in STEP_ERROR_MODES:
        raise ValueError(f"on_step_error expects one of {', '.join(map(repr, STEP_ERROR_MODES))}, "
                         f"got {options['on_step_error']!r}")
