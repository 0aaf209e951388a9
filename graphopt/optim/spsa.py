"""``spsa``: simultaneous-perturbation stochastic approximation, a zeroth-order optimizer.

Each step perturbs every coordinate at once by ±c, runs the closure twice, and moves against
the estimated gradient. Bounded numbers step in their space's unit interval; tensors (that need
no ``grad``) and unbounded numbers step in their own coordinates.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from graphopt.errors import OptimizerStepError
from graphopt.graph.kinds import SpaceKind
from graphopt.graph.node import Param
from graphopt.optim.objective import to_loss
from graphopt.optim.optimizer import Optimizer, ParamsArg
from graphopt.plugins.manager import PluginManager, hookimpl


class SPSA(Optimizer):
    """Zeroth-order optimizer for ``float``/``int`` parameters and tensors.

    ``step(closure)``: ``closure()`` runs the workflow with the current values and returns a loss
    (number, scalar tensor, or ``Feedback``; a feedback's score is maximized). Gains follow
    Spall: ``a_k = lr / (k + 1 + stability) ** alpha``, ``c_k = perturbation / (k + 1) ** gamma``.
    """

    name = "spsa"
    kinds = frozenset({"float", "int", "tensor"})

    def __init__(self, params: ParamsArg, *, lr: float = 0.1, perturbation: float = 0.1,
                 alpha: float = 0.602, gamma: float = 0.101, stability: float = 0.0, seed: int = 0,
                 plugin_manager: PluginManager | None = None) -> None:
        super().__init__(params, {"lr": lr, "perturbation": perturbation, "alpha": alpha,
                                  "gamma": gamma, "stability": stability},
                         plugin_manager=plugin_manager)
        self.seed = seed
        self.iteration = 0
        self.generator = torch.Generator().manual_seed(seed)

    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        if closure is None:
            raise OptimizerStepError("optimizer 'spsa' needs step(closure): a function that runs the "
                                     "workflow and returns its loss", optimizer=self)
        k = self.iteration
        proposal: dict[Param, Any] = {}
        originals = {p: p.value.detach().clone() if p.kind.name == "tensor" else p.value for p in self.params}
        try:
            for group in self.param_groups:
                params = group["params"]
                c_k = group["perturbation"] / (k + 1) ** group["gamma"]
                a_k = group["lr"] / (k + 1 + group["stability"]) ** group["alpha"]
                theta = [_encode(p) for p in params]
                delta = [torch.randint(0, 2, t.shape, generator=self.generator, dtype=torch.int64)
                         .to(dtype=t.dtype, device=t.device) * 2 - 1 for t in theta]
                losses = []
                for sign in (1.0, -1.0):
                    for target, t, d in zip(params, theta, delta):
                        _set(target, _decode(target, t + sign * c_k * d))
                    losses.append(to_loss(closure()))
                slope = (losses[0] - losses[1]) / (2 * c_k)
                for target, t, d in zip(params, theta, delta):
                    proposal[target] = _decode(target, t - a_k * slope * d)
        except ValueError as err:
            raise OptimizerStepError(f"optimizer 'spsa': closure result: {err}", optimizer=self) from err
        finally:
            for target, value in originals.items():
                _set(target, value)
        self.iteration += 1
        return proposal

    def extra_state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "generator": self.generator.get_state().tolist()}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        self.iteration = int(data["iteration"])
        self.generator.set_state(torch.tensor(data["generator"], dtype=torch.uint8))


def _encode(target: Param) -> torch.Tensor:
    if target.kind.name == "tensor":
        return target.value.detach().clone()
    if isinstance(target.kind, SpaceKind):
        return torch.tensor([target.kind.space.to_unit(target.value)], dtype=torch.float64)
    return torch.tensor([float(target.value)], dtype=torch.float64)


def _decode(target: Param, coordinates: torch.Tensor) -> Any:
    if target.kind.name == "tensor":
        return coordinates
    if isinstance(target.kind, SpaceKind):
        return target.kind.space.from_unit(float(coordinates[0]))
    value = float(coordinates[0])
    return round(value) if target.kind.name == "int" else value


def _set(target: Param, value: Any) -> None:
    if target.kind.name == "tensor":
        with torch.no_grad():
            target.value.copy_(value)
    else:
        target.value = value


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [SPSA]
