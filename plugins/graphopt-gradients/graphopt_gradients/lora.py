"""Low-rank adapters on a torch model's linear layers, as graphopt tensor params (torch alone).

``add_lora(model, rank=4)`` attaches to each matching ``nn.Linear`` a forward hook that adds
``scale * (x @ A.T) @ B.T`` to its output; ``A`` (rank x in, small random) and ``B`` (out x rank,
zeros, so the model is unchanged until trained) are float32 ``go.param`` tensors named
``lora.<module path>.A`` / ``.B``. Optimize them with ``mezo`` (forward passes only: fine-tuning
the embedded model at inference memory) or, with ``requires_grad=True``, any gradient optimizer.
``remove()`` detaches every hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

from graphopt.graph.node import Param, param

if TYPE_CHECKING:
    import torch

DEFAULT_TARGETS = ("q_proj", "v_proj")


class LoRA:
    """The adapters attached to one model: their params, and the hooks to remove."""

    __slots__ = ("params", "scale", "_handles")

    def __init__(self, params: list[Param], scale: float, handles: list[Any]) -> None:
        self.params = params
        self.scale = scale
        self._handles = handles

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def remove(self) -> None:
        """Detach every adapter: the model computes what it did before ``add_lora``."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


class _Adapter:
    """The forward hook of one linear layer."""

    __slots__ = ("down", "up", "scale")

    def __init__(self, down: Param, up: Param, scale: float) -> None:
        self.down = down
        self.up = up
        self.scale = scale

    def __call__(self, module: Any, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> torch.Tensor:
        down, up = self.down.value, self.up.value
        delta = (inputs[0].to(down.dtype) @ down.T) @ up.T
        return output + (self.scale * delta).to(output.dtype)


def add_lora(model: Any, *, rank: int = 4, alpha: float = 8.0, targets: Sequence[str] = DEFAULT_TARGETS,
             seed: int = 0, requires_grad: bool = False, prefix: str = "lora") -> LoRA:
    """Adapters on every ``nn.Linear`` whose dotted name ends with one of ``targets``.

    ``scale = alpha / rank``; ``A`` is drawn from ``N(0, 1/in)`` with ``seed`` on the layer's
    device. Raises ``ValueError`` when no layer matches.
    """
    import torch

    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"add_lora: rank expects an int >= 1, got {rank!r}")
    scale = alpha / rank
    params: list[Param] = []
    handles: list[Any] = []
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or not name.split(".")[-1] in targets:
            continue
        device = module.weight.device
        generator = torch.Generator(device=device).manual_seed(seed + len(params))
        down = torch.randn(rank, module.in_features, generator=generator, device=device) / module.in_features ** 0.5
        up = torch.zeros(module.out_features, rank, device=device)
        down_param = param(down.requires_grad_(requires_grad), name=f"{prefix}.{name}.A")
        up_param = param(up.requires_grad_(requires_grad), name=f"{prefix}.{name}.B")
        handles.append(module.register_forward_hook(_Adapter(down_param, up_param, scale)))
        params += [down_param, up_param]
    if not params:
        raise ValueError(f"add_lora: no nn.Linear named like {', '.join(targets)} in {type(model).__name__}")
    return LoRA(params, scale, handles)
