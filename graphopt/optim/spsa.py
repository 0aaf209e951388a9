"""``spsa``: simultaneous-perturbation stochastic approximation, a zeroth-order optimizer.

Each step runs the closure at the current point and at a probe that moves every coordinate at
once by ±c, and moves against the slope between them. Bounded numbers live in their space's
unit interval (a range is 1 wide whatever its units); tensors and unbounded numbers in their own
coordinates. The slope is divided by a running root mean square of the slopes seen, so the
objective's scale cancels out: multiplying the loss or rescaling a range leaves the walk in unit
coordinates unchanged. The gain adapts (a "bold driver"): it grows by ``GROW`` after a step that
lowered the loss and shrinks by ``SHRINK`` after one that raised it; the probe never reaches
further than the gain, so the slope stays local as steps shrink.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Mapping

from graphopt.errors import OptimizerStepError
from graphopt.graph.kinds import SpaceKind, is_tensor
from graphopt.graph.node import Param
from graphopt.graph.space import Int
from graphopt.optim.evaluation import Counted, EvaluationMemo, is_evaluation, point_key
from graphopt.optim.objective import to_loss
from graphopt.optim.optimizer import Optimizer, ParamsArg, require_ints
from graphopt.plugins.manager import PluginManager, hookimpl

if TYPE_CHECKING:
    import torch

GROW = 1.2
SHRINK = 0.5
MAX_GAIN = 0.5  # in unit coordinates: half a range per step at most


class SPSA(Counted, Optimizer):
    """Zeroth-order optimizer for ``float``/``int`` parameters and tensors.

    ``step(closure)``: ``closure()`` runs the workflow with the current values and returns a loss
    (number, scalar tensor, or ``Feedback``; a feedback's score is maximized). ``lr`` is the first
    step's length per coordinate and ``perturbation`` the probe's distance, both in unit
    coordinates for bounded numbers. Spall's decay can apply on top: the step is
    ``gain / (k + 1 + stability) ** alpha`` (``alpha=0.602`` is Spall's choice; the default 0
    leaves the step to the adaptive gain), the probe ``perturbation / (k + 1) ** gamma``.
    ``adapt=False`` keeps the gain at ``lr``. Points a plain closure already ran are read from a
    memo (``evaluations``, ``distinct_points``); ``memo_size=0`` runs every point, for a closure
    whose result changes from step to step (a new minibatch each time).
    """

    name = "spsa"
    kinds = frozenset({"float", "int", "tensor"})

    def __init__(self, params: ParamsArg, *, lr: float = 0.1, perturbation: float = 0.02,
                 alpha: float = 0.0, gamma: float = 0.101, stability: float = 0.0,
                 adapt: bool = True, beta: float = 0.9, seed: int = 0, memo_size: int = 10_000,
                 plugin_manager: PluginManager | None = None) -> None:
        require_ints(self.name, {"memo_size": (memo_size, 0)})
        for option, value in (("lr", lr), ("perturbation", perturbation)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"optimizer 'spsa': {option} expects a number > 0, got {value!r}")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta < 1:
            raise ValueError(f"optimizer 'spsa': beta expects a number in [0, 1), got {beta!r}")
        super().__init__(params, {"lr": lr, "perturbation": perturbation, "alpha": alpha,
                                  "gamma": gamma, "stability": stability, "adapt": adapt,
                                  "beta": beta},
                         plugin_manager=plugin_manager)
        self.seed = seed
        self.iteration = 0
        import torch  # here, not at the top: listing plugins or tracing text never loads torch

        self.generator = torch.Generator().manual_seed(seed)
        self.memo = EvaluationMemo(memo_size)
        self.tracks: list[Track | None] = [None] * len(self.param_groups)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        super().add_param_group(group)
        if hasattr(self, "tracks"):
            self.tracks.append(None)

    def propose(self, closure: Callable[[], Any] | None = None) -> dict[Param, Any]:
        if closure is None:
            raise OptimizerStepError("optimizer 'spsa' needs step(closure): a function that runs the "
                                     "workflow and returns its loss", optimizer=self)
        import torch

        k = self.iteration
        proposal: dict[Param, Any] = {}
        originals = {p: p.value.detach().clone() if p.kind.name == "tensor" else p.value for p in self.params}
        tracks = list(self.tracks)
        try:
            for index, group in enumerate(self.param_groups):
                params = group["params"]
                track = tracks[index]
                if track is None or not track.holds(params):
                    track = Track([_encode(p) for p in params], group["lr"])
                theta = track.theta
                # The probe never reaches past the step: a wide probe in a narrow valley measures
                # the valley's walls, not its slope.
                c_k = min(group["perturbation"] / (k + 1) ** group["gamma"], track.gain)
                delta = [torch.randint(0, 2, t.shape, generator=self.generator, dtype=torch.int64)
                         .to(dtype=t.dtype, device=t.device) * 2 - 1 for t in theta]
                probe = [t + max(c_k, _least_probe(p)) * d for p, t, d in zip(params, theta, delta)]
                losses = [self._loss(closure, params, theta, originals),
                          self._loss(closure, params, probe, originals)]
                tracks[index] = track.advance(params, losses, c_k, delta, group, k)
                for target, t in zip(params, tracks[index].theta):
                    proposal[target] = _decode(target, t)
        finally:
            for target, value in originals.items():
                _set(target, value)
        self.tracks = tracks
        self.iteration += 1
        return proposal

    def _loss(self, closure: Callable[[], Any], params: list[Param], coordinates: list[torch.Tensor],
              originals: Mapping[Param, Any]) -> float:
        """The loss with ``params`` at ``coordinates`` and every other param as it was."""
        values = {target: _decode(target, t) for target, t in zip(params, coordinates)}
        everything = {p: values[p] if p in values else originals[p] for p in self.params}

        def run() -> float:
            for target, value in everything.items():
                _set(target, value)
            try:
                loss = to_loss(closure())
            except ValueError as err:
                raise OptimizerStepError(f"optimizer 'spsa': closure result: {err}", optimizer=self) from err
            if not math.isfinite(loss):
                raise OptimizerStepError(f"optimizer 'spsa': the closure returned a non-finite loss "
                                         f"{loss!r}; nothing changed", optimizer=self)
            return loss

        if is_evaluation(closure):  # a trainer's: its examples change, its cache keeps runs
            return run()
        return self.memo.run(point_key(everything, self.param_names), run)

    # -- state --------------------------------------------------------------------------------
    def extra_state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "generator": self.generator.get_state().tolist(),
                "tracks": [t.to_json() if t is not None else None for t in self.tracks],
                "memo": self.memo.state_dict()}

    def load_extra_state_dict(self, data: Mapping[str, Any]) -> None:
        import torch

        self.iteration = int(data["iteration"])
        self.generator.set_state(torch.tensor(data["generator"], dtype=torch.uint8))
        saved = data.get("tracks") or [None] * len(self.param_groups)
        self.tracks = [Track.from_json(t, group["params"]) if t is not None else None
                       for t, group in zip(saved, self.param_groups)]
        if "memo" in data:
            self.memo.load_state_dict(data["memo"])


class Track:
    """One group's walk: its coordinates, gain, running mean square of slopes, and the loss at
    the point before."""

    __slots__ = ("theta", "gain", "square", "count", "previous_loss")

    def __init__(self, theta: list[torch.Tensor], gain: float, square: float = 0.0, count: int = 0,
                 previous_loss: float | None = None) -> None:
        self.theta = theta
        self.gain = gain
        self.square = square
        self.count = count
        self.previous_loss = previous_loss

    def holds(self, params: list[Param]) -> bool:
        """Whether the params still hold this track's point (nobody assigned them meanwhile)."""
        return all(_same(_decode(p, t), p.value) for p, t in zip(params, self.theta))

    def advance(self, params: list[Param], losses: list[float], c_k: float,
                delta: list[torch.Tensor], group: Mapping[str, Any], k: int) -> Track:
        """The next track after ``theta`` and ``theta + c_k * delta`` gave ``losses``."""
        center, probe = losses
        gain = self.gain
        if group["adapt"] and self.previous_loss is not None:
            if center > self.previous_loss:
                gain *= SHRINK
            else:
                gain = min(MAX_GAIN if _bounded(params) else math.inf, gain * GROW)
        # The slope over a running root mean square of slopes: the loss's scale cancels out,
        # while steepness still weighs each step against the others.
        slope = (probe - center) / c_k
        beta = group["beta"]
        square = beta * self.square + (1 - beta) * slope * slope
        count = self.count + 1
        scale = math.sqrt(square / (1 - beta ** count))
        a_k = gain / (k + 1 + group["stability"]) ** group["alpha"]
        step = a_k * slope / scale if scale > 0 else 0.0
        theta = [_clip(p, t - step * d) for p, t, d in zip(params, self.theta, delta)]
        return Track(theta, gain, square, count, center)

    def to_json(self) -> dict[str, Any]:
        return {"theta": [t.tolist() for t in self.theta], "gain": self.gain, "square": self.square,
                "count": self.count, "previous_loss": self.previous_loss}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], params: list[Param]) -> Track:
        import torch

        theta = []
        for values, target in zip(data["theta"], params):
            like = _encode(target)
            theta.append(torch.tensor(values, dtype=like.dtype, device=like.device))
        return cls(theta, float(data["gain"]), float(data["square"]), int(data["count"]),
                   data["previous_loss"])


def _least_probe(target: Param) -> float:
    """How far a probe must reach to move an integer by one (0 for real numbers and tensors)."""
    kind = target.kind
    if isinstance(kind, SpaceKind) and isinstance(kind.space, Int):
        space, value = kind.space, target.value
        upper = min(value + 1, space.high)
        lower = upper - 1
        return space.to_unit(upper) - space.to_unit(lower)
    return 1.0 if kind.name == "int" else 0.0


def _bounded(params: list[Param]) -> bool:
    return all(isinstance(p.kind, SpaceKind) for p in params)


def _encode(target: Param) -> torch.Tensor:
    if target.kind.name == "tensor":
        return target.value.detach().clone()
    import torch

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


def _clip(target: Param, coordinates: torch.Tensor) -> torch.Tensor:
    """Bounded coordinates kept in [0, 1], so the walk never drifts past a bound it cannot leave."""
    return coordinates.clamp(0.0, 1.0) if isinstance(target.kind, SpaceKind) else coordinates


def _same(value: Any, current: Any) -> bool:
    if is_tensor(value) or is_tensor(current):
        return is_tensor(value) and is_tensor(current) and value.shape == current.shape \
            and bool(sys.modules["torch"].equal(value.to(current.dtype), current))
    return type(value) is type(current) and value == current


def _set(target: Param, value: Any) -> None:
    if target.kind.name == "tensor":
        with sys.modules["torch"].no_grad():  # a tensor exists, so torch is loaded
            target.value.copy_(value)
    else:
        target.value = value


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [SPSA]
