"""``torch``: any ``torch.optim`` algorithm (Adam, SGD, AdamW, …) over tensor parameters."""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable, Mapping

import torch

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.graph.node import Param
from graphopt.optim import tensor_state
from graphopt.optim.optimizer import Optimizer, ParamsArg
from graphopt.plugins.manager import PluginManager, hookimpl


def _algorithms() -> dict[str, type[torch.optim.Optimizer]]:
    return {name: cls for name, cls in vars(torch.optim).items()
            if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
            and cls is not torch.optim.Optimizer}


def _check_option_types(algorithm: str, cls: type, options: Mapping[str, Any]) -> None:
    """Numbers where torch's default is a number, booleans where it is a boolean: torch itself
    accepts ``lr="fast"`` and fails only at the first step."""
    defaults = inspect.signature(cls).parameters
    for key, value in options.items():
        default = defaults[key].default if key in defaults else None
        number = isinstance(value, (int, float, torch.Tensor)) and not isinstance(value, bool)
        if (isinstance(default, bool) and not isinstance(value, bool)) or \
                (isinstance(default, (int, float)) and not isinstance(default, bool) and not number):
            expected = "a bool" if isinstance(default, bool) else "a number"
            raise ValueError(f"optimizer 'torch' ({algorithm}): option {key!r} expects {expected}, "
                             f"got {value!r}")


class TorchOptimizer(Optimizer):
    """Wraps ``torch.optim.<algorithm>``; gradients come from ``go.backward`` on a loss.

    ``step()`` is the torch step itself, updating the tensors in place. Per-group options are
    passed to torch unchanged (``lr``, ``weight_decay``, …).
    """

    name = "torch"
    kinds = frozenset({"tensor"})

    def __init__(self, params: ParamsArg, algorithm: str = "Adam", *,
                 plugin_manager: PluginManager | None = None, **options: Any) -> None:
        algorithms = _algorithms()
        if algorithm not in algorithms:
            close = difflib.get_close_matches(algorithm, algorithms, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ValueError(f"optimizer 'torch': no torch.optim algorithm {algorithm!r}{hint} "
                             f"available: {', '.join(sorted(algorithms))}")
        self.algorithm = algorithm
        _check_option_types(algorithm, algorithms[algorithm], options)
        super().__init__(params, options, plugin_manager=plugin_manager)
        torch_groups = [{**{k: v for k, v in g.items() if k != "params"},
                         "params": [p.value for p in g["params"]]} for g in self.param_groups]
        try:
            self.torch_optimizer = algorithms[algorithm](torch_groups)
        except (TypeError, ValueError) as err:
            raise ValueError(f"optimizer 'torch' ({algorithm}): {err}") from err
        self._committed = {self.param_names[p]: p.value for p in self.params}
        self._finite = FiniteCheck()

    def check_param(self, name: str, target: Param) -> None:
        tensor = target.value
        if not (tensor.is_leaf and tensor.requires_grad and tensor.is_floating_point()):
            raise ParamValidationError(
                f"optimizer 'torch': param {name!r} must be a floating-point leaf tensor with "
                f"requires_grad=True (got dtype {tensor.dtype}, requires_grad={tensor.requires_grad})",
                param=target)

    def step(self, closure: Callable[[], Any] | None = None) -> dict[str, Any]:
        """One torch step over the gradients ``go.backward`` left on the tensors.

        A NaN or infinite gradient refuses the step (``OptimizerStepError``), every tensor and
        the torch state unchanged: one bad loss must not turn the parameters into NaN.
        """
        params = self.params
        self._call_hook("graphopt_before_step", optimizer=self, params=params)
        with_grad = [p for p in params if p.value.grad is not None]
        if not with_grad:
            return {}
        bad = [self.param_names[p] for p in self._finite.non_finite(with_grad)]
        if bad:
            raise OptimizerStepError(f"optimizer 'torch' refused the step, nothing changed: non-finite "
                                     f"gradient (NaN or inf) in {', '.join(map(repr, bad))}",
                                     optimizer=self, errors={n: "non-finite gradient" for n in bad})
        self.torch_optimizer.step(closure)
        self._call_hook("graphopt_after_step", optimizer=self, params=params,
                        committed=self._committed)
        return self._committed

    def zero_feedback(self, set_to_none: bool = True) -> None:
        for target in self.params:
            target.feedback.clear()
        self.torch_optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        data = super().state_dict()
        data["extra"] = {"algorithm": self.algorithm,
                         "torch": tensor_state.encode(self.torch_optimizer.state_dict())}
        return data

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        if data.get("algorithm") != self.algorithm:
            raise ParamValidationError(f"optimizer 'torch': state dict is for {data.get('algorithm')!r}, "
                                       f"not {self.algorithm!r}")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        saved = tensor_state.decode(data["torch"])
        saved["state"] = {int(k): v for k, v in saved["state"].items()}
        self.torch_optimizer.load_state_dict(saved)


class FiniteCheck:
    """Finds parameters whose gradient holds a NaN or an infinity, in one kernel per device.

    Dense floating-point gradients go through the fused check ``torch.amp.GradScaler`` uses
    (scaling by exactly 1.0, which changes no value), one flag per device read back once: about
    two kernel launches a step, where a check per tensor costs three each. Only when a flag is
    set, or for sparse and complex gradients, is each tensor checked alone.
    """

    def __init__(self) -> None:
        self._flags: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}

    def non_finite(self, params: list[Param]) -> list[Param]:
        groups: dict[tuple[Any, Any], list[Param]] = {}
        suspects: set[Param] = set()
        for p in params:
            grad = p.value.grad
            if grad.is_sparse or not grad.is_floating_point():
                suspects.add(p)
            else:
                groups.setdefault((grad.device, grad.dtype), []).append(p)
        for (device, _), members in groups.items():
            found, one = self._flags.get(device) or self._new_flags(device)
            found.zero_()
            try:
                torch._amp_foreach_non_finite_check_and_unscale_(
                    [p.value.grad for p in members], found, one)
            except RuntimeError:  # a dtype or device the fused kernel lacks: check each tensor
                suspects.update(members)
                continue
            if found.item():
                suspects.update(members)
        return [p for p in params if p in suspects and not _all_finite(p.value.grad)]

    def _new_flags(self, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
        flags = (torch.zeros(1, device=device), torch.ones(1, device=device))
        self._flags[device] = flags
        return flags


def _all_finite(grad: torch.Tensor) -> bool:
    values = grad.coalesce().values() if grad.is_sparse else grad
    return bool(torch.isfinite(values).all())


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [TorchOptimizer]
