"""``mezo``: memory-efficient zeroth-order optimization (Malladi et al., 2023, "Fine-Tuning Language
Models with Just Forward Passes").

Each step draws one seed. The seed regenerates the Gaussian direction ``z`` three times — to move
to ``θ + εz``, to ``θ − εz``, and for the update ``θ ← θ − lr·(g·z + λθ)`` with the projected
gradient ``g = (L(θ + εz) − L(θ − εz)) / 2ε`` — so ``z`` is never stored and memory stays at what
inference needs. The loss may come from any metric: the closure returns a number, a tensor or a
``Feedback`` (whose score is maximized).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Mapping

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.graph.node import Param
from graphopt.optim.objective import to_loss
from graphopt.optim.optimizer import Optimizer, ParamsArg
from graphopt.plugins.manager import PluginManager

if TYPE_CHECKING:
    import torch

_MASK = (1 << 64) - 1


def mix(*numbers: int) -> int:
    """A well-spread 63-bit seed from integers (splitmix64 over each in turn)."""
    state = 0x9E3779B97F4A7C15
    for number in numbers:
        state = (state ^ (number & _MASK)) + 0x9E3779B97F4A7C15 & _MASK
        state = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & _MASK
        state ^= state >> 31
    return state >> 1


def direction(tensor: torch.Tensor, seed: int) -> torch.Tensor:
    """The perturbation ``z ~ N(0, I)`` for ``tensor``, drawn on its device from ``seed``."""
    import torch

    generator = torch.Generator(device=tensor.device).manual_seed(seed)
    return torch.randn(tensor.shape, generator=generator, device=tensor.device, dtype=tensor.dtype)


class MeZO(Optimizer):
    """Zeroth-order SGD over tensors with the seed trick: two forward runs per step, no gradients.

    ``step(closure)``: ``closure()`` runs the workflow with the current values and returns a loss
    (number, scalar tensor) or a ``Feedback`` (loss, else score, maximized). It runs under
    ``torch.no_grad()``. Options: ``lr``, ``eps`` (perturbation scale), ``weight_decay`` (per
    group), ``seed``. A closure result that is not a finite number refuses the step: the tensors
    go back to where they were (up to float rounding of ``+εz − εz``) and the step count stays.
    ``last_step`` reports the step's seed, both losses and the projected gradient.
    """

    name = "mezo"
    kinds = frozenset({"tensor"})

    def __init__(self, params: ParamsArg, *, lr: float = 1e-3, eps: float = 1e-3, weight_decay: float = 0.0,
                 seed: int = 0, plugin_manager: PluginManager | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"optimizer 'mezo': seed expects an int, got {seed!r}")
        super().__init__(params, {"lr": lr, "eps": eps, "weight_decay": weight_decay},
                         plugin_manager=plugin_manager)
        self.seed = seed
        self.iteration = 0
        self.last_step: dict[str, Any] = {}

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        super().add_param_group(group)
        options = self.param_groups[-1]
        for option in ("lr", "eps", "weight_decay"):
            value = options[option]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not (value >= 0 if option == "weight_decay" else value > 0):
                bound = ">= 0" if option == "weight_decay" else "> 0"
                raise ValueError(f"optimizer 'mezo': {option} expects a finite number {bound}, got {value!r}")

    def check_param(self, name: str, target: Param) -> None:
        if not target.value.is_floating_point():
            raise ParamValidationError(f"optimizer 'mezo': param {name!r} must be a floating-point "
                                       f"tensor, got dtype {target.value.dtype}", param=target)

    def step_seed(self, iteration: int | None = None) -> int:
        """The seed of step ``iteration`` (default: the next one)."""
        return mix(self.seed, self.iteration if iteration is None else iteration)

    def step(self, closure: Callable[[], Any] | None = None) -> dict[str, Any]:
        """Two closure runs at ``θ ± εz``, then ``θ ← θ − lr·(g·z + λθ)`` in place."""
        self._call_hook("graphopt_before_step", optimizer=self, params=self.params)
        if closure is None:
            raise OptimizerStepError("optimizer 'mezo' needs step(closure): a function that runs the "
                                     "workflow and returns its loss, score or Feedback", optimizer=self)
        seed = self.step_seed()
        offset = 0.0  # how many εz the tensors are away from θ, to put them back on any failure
        try:
            self._perturb(seed, 1.0)
            offset = 1.0
            plus = self._loss(closure)
            self._perturb(seed, -2.0)
            offset = -1.0
            minus = self._loss(closure)
        finally:
            if offset:
                self._perturb(seed, -offset)
        projected = (plus - minus) / 2.0  # divided by each group's eps in _update
        self._update(seed, projected)
        self.last_step = {"step": self.iteration, "seed": seed, "loss_plus": plus, "loss_minus": minus,
                          "projected_grad": [projected / g["eps"] for g in self.param_groups]}
        self.iteration += 1
        committed = {self.param_names[p]: p.value for p in self.params}
        self._call_hook("graphopt_after_step", optimizer=self, params=self.params, committed=committed)
        return committed

    def _loss(self, closure: Callable[[], Any]) -> float:
        import torch

        with torch.no_grad():
            result = closure()
        try:
            loss = to_loss(result)
        except ValueError as err:
            raise OptimizerStepError(f"optimizer 'mezo': closure result: {err}", optimizer=self) from err
        if not math.isfinite(loss):
            raise OptimizerStepError(f"optimizer 'mezo' refused the step, nothing changed: the closure "
                                     f"returned a non-finite loss {loss}", optimizer=self)
        return loss

    def _perturb(self, seed: int, scale: float) -> None:
        import torch

        with torch.no_grad():
            for index, target in enumerate(self.params):
                eps = self._group_of(target)["eps"]
                target.value.add_(direction(target.value, mix(seed, index)), alpha=scale * eps)

    def _update(self, seed: int, projected: float) -> None:
        import torch

        with torch.no_grad():
            for index, target in enumerate(self.params):
                group = self._group_of(target)
                grad = projected / group["eps"]
                if group["weight_decay"]:
                    target.value.mul_(1 - group["lr"] * group["weight_decay"])
                target.value.add_(direction(target.value, mix(seed, index)), alpha=-group["lr"] * grad)

    def _group_of(self, target: Param) -> dict[str, Any]:
        return next(g for g in self.param_groups if any(p is target for p in g["params"]))

    def extra_state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "seed": self.seed}

    def check_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        for key in ("iteration", "seed"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 and key == "iteration":
                raise ParamValidationError(f"optimizer 'mezo': state dict {key} expects an int, got {value!r}")

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        self.iteration = int(data["iteration"])
        self.seed = int(data["seed"])
