"""``lion``: the Lion optimizer (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

Sign of an interpolated momentum, decoupled weight decay, one state tensor per parameter (Adam
keeps two). Driven like ``torch``: ``go.backward`` leaves gradients on the tensors, ``step()``
updates them in place.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Sequence

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.graph.node import Param
from graphopt.optim import tensor_state
from graphopt.optim.optimizer import Optimizer, ParamsArg
from graphopt.plugins.manager import PluginManager

if TYPE_CHECKING:
    import torch


def lion(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], exp_avgs: Sequence[torch.Tensor], *,
         lr: float, beta1: float, beta2: float, weight_decay: float) -> None:
    """One Lion update in place: ``θ ← θ(1 − lr·λ) − lr·sign(β1·m + (1 − β1)·g)``, ``m ← β2·m + (1 − β2)·g``."""
    import torch

    with torch.no_grad():
        for param, grad, exp_avg in zip(params, grads, exp_avgs):
            direction = exp_avg.mul(beta1).add_(grad, alpha=1 - beta1).sign_()
            if weight_decay:
                param.mul_(1 - lr * weight_decay)
            param.add_(direction, alpha=-lr)
            exp_avg.mul_(beta2).add_(grad, alpha=1 - beta2)


class Lion(Optimizer):
    """Lion over floating-point leaf tensors; state is one momentum tensor per parameter.

    Options (per group): ``lr`` (the paper advises 3-10x smaller than Adam's), ``betas``
    (``(beta1, beta2)``, interpolation and momentum decay), ``weight_decay`` (decoupled, scaled
    by ``lr``; 3-10x larger than AdamW's for the same effect). A step whose gradients hold a
    non-finite value is refused with ``OptimizerStepError``, every tensor and state unchanged.
    """

    name = "lion"
    kinds = frozenset({"tensor"})

    def __init__(self, params: ParamsArg, *, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, plugin_manager: PluginManager | None = None) -> None:
        super().__init__(params, {"lr": lr, "betas": list(betas), "weight_decay": weight_decay},
                         plugin_manager=plugin_manager)

    def add_param_group(self, group: Any) -> None:
        super().add_param_group(group)
        self.param_groups[-1]["betas"] = list(self.param_groups[-1]["betas"])
        _check_options(self.param_groups[-1])

    def check_param(self, name: str, target: Param) -> None:
        tensor = target.value
        if not (tensor.is_leaf and tensor.requires_grad and tensor.is_floating_point()):
            raise ParamValidationError(
                f"optimizer 'lion': param {name!r} must be a floating-point leaf tensor with "
                f"requires_grad=True (got dtype {tensor.dtype}, requires_grad={tensor.requires_grad})",
                param=target)

    def step(self, closure: Callable[[], Any] | None = None) -> dict[str, Any]:
        """One Lion update over the gradients ``go.backward`` left on the tensors.

        ``closure``, when given, runs first with grad enabled (as in ``torch.optim``) and may
        recompute the gradients.
        """
        import torch

        self._call_hook("graphopt_before_step", optimizer=self, params=self.params)
        if closure is not None:
            with torch.enable_grad():
                closure()
        with_grads = [p for p in self.params if p.value.grad is not None]
        if not with_grads:
            return {}
        broken = [self.param_names[p] for p in with_grads if not bool(torch.isfinite(p.value.grad).all())]
        if broken:
            raise OptimizerStepError(f"optimizer 'lion' refused the step, nothing changed: non-finite "
                                     f"gradient in {', '.join(broken)}", optimizer=self,
                                     errors={n: "non-finite gradient" for n in broken})
        for group in self.param_groups:
            targets = [p for p in group["params"] if p.value.grad is not None]
            if not targets:
                continue
            for target in targets:
                state = self.state.setdefault(target, {"step": 0})
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(target.value, memory_format=torch.preserve_format)
                state["step"] += 1
            beta1, beta2 = group["betas"]
            lion([p.value for p in targets], [p.value.grad for p in targets],
                 [self.state[p]["exp_avg"] for p in targets],
                 lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"])
        committed = {self.param_names[p]: p.value for p in with_grads}
        self._call_hook("graphopt_after_step", optimizer=self, params=self.params, committed=committed)
        return committed

    def state_bytes(self) -> int:
        """Bytes held by the optimizer's state tensors."""
        return sum(s["exp_avg"].numel() * s["exp_avg"].element_size() for s in self.state.values())

    def param_state_to_json(self, target: Param, state: dict[str, Any]) -> Any:
        return tensor_state.encode(state)

    def param_state_from_json(self, target: Param, data: Any) -> dict[str, Any]:
        import torch

        state = tensor_state.decode(data, device=target.value.device)
        exp_avg = state.get("exp_avg")
        if not isinstance(exp_avg, torch.Tensor) or exp_avg.shape != target.value.shape:
            name = self.param_names[target]
            raise ParamValidationError(f"optimizer 'lion': state for param {name!r} expects exp_avg of "
                                       f"shape {tuple(target.value.shape)}, got "
                                       f"{None if exp_avg is None else tuple(exp_avg.shape)}", param=target)
        state["exp_avg"] = exp_avg.to(dtype=target.value.dtype)
        return state


def _check_options(group: dict[str, Any]) -> None:
    lr, betas, decay = group["lr"], group["betas"], group["weight_decay"]
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"optimizer 'lion': lr expects a finite number > 0, got {lr!r}")
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
        raise ValueError(f"optimizer 'lion': betas expects two numbers in [0, 1), got {betas!r}")
    if not (isinstance(decay, (int, float)) and math.isfinite(decay) and decay >= 0):
        raise ValueError(f"optimizer 'lion': weight_decay expects a finite number >= 0, got {decay!r}")
