"""``torch``: any ``torch.optim`` algorithm (Adam, SGD, AdamW, …) over tensor parameters.

Importing this module does not import torch (the plugin manager imports every built-in):
torch is imported when a torch optimizer is built, and a tensor parameter means it already was.
"""

from __future__ import annotations

import difflib
import inspect
import sys
from typing import TYPE_CHECKING, Any, Callable, Mapping

from graphopt.errors import OptimizerStepError, ParamValidationError
from graphopt.graph.kinds import is_tensor
from graphopt.graph.node import Param
from graphopt.optim import tensor_state
from graphopt.optim.optimizer import Optimizer, ParamsArg
from graphopt.plugins.manager import PluginManager, hookimpl

if TYPE_CHECKING:
    import torch


def _algorithms() -> dict[str, type[torch.optim.Optimizer]]:
    import torch  # here, not at the top: see the module docstring

    return {name: cls for name, cls in vars(torch.optim).items()
            if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)
            and cls is not torch.optim.Optimizer}


def _check_option_types(algorithm: str, cls: type, options: Mapping[str, Any]) -> None:
    """Numbers where torch's default is a number, booleans where it is a boolean: torch itself
    accepts ``lr="fast"`` and fails only at the first step."""
    defaults = inspect.signature(cls).parameters
    for key, value in options.items():
        default = defaults[key].default if key in defaults else None
        number = (isinstance(value, (int, float)) or is_tensor(value)) and not isinstance(value, bool)
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
        # What step() and zero_feedback() touch, gathered once: the tensors torch steps (param
        # order; assign() copies into them, so they stay the params' values) and the hook callers
        # (pluggy keeps one per hook; a plugin registered later joins it, so checking it per step
        # still finds that plugin).
        self._tensors = [tensor for group in torch_groups for tensor in group["params"]]
        self._finite = FiniteCheck(self._tensors[0].device)
        self._before_step = self.plugin_manager.hook.graphopt_before_step
        self._after_step = self.plugin_manager.hook.graphopt_after_step

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group, to torch's optimizer too once it exists (its options checked by torch);
        a group torch refuses leaves both unchanged."""
        super().add_param_group(group)
        if "torch_optimizer" not in self.__dict__:  # still in __init__: torch gets every group then
            return
        added = self.param_groups[-1]
        tensors = [p.value for p in added["params"]]
        try:
            self.torch_optimizer.add_param_group(
                {**{k: v for k, v in added.items() if k != "params"}, "params": tensors})
        except (TypeError, ValueError) as err:
            self.param_groups.pop()
            for target in added["params"]:
                del self.param_names[target]
            raise ValueError(f"optimizer 'torch' ({self.algorithm}): {err}") from err
        self._tensors.extend(tensors)
        self._committed.update({self.param_names[p]: p.value for p in added["params"]})

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
        the torch state unchanged: one bad loss must not turn the parameters into NaN. Deciding
        that before torch writes anything reads one flag back from the device, the step's only
        host-device synchronisation (see ``FiniteCheck``).
        """
        # The hot path of every training loop: torch's own step with as little as possible around it.
        if self._before_step.get_hookimpls():
            self._before_step(optimizer=self, params=self.params)
        grads = []
        for tensor in self._tensors:  # a loop, not a comprehension: no function frame per step
            grad = tensor.grad
            if grad is not None:
                grads.append(grad)
        if not grads:
            return {}
        if not self._finite.all_finite(grads):
            bad = [name for target, name in self.param_names.items()
                   if target.value.grad is not None and not _all_finite(target.value.grad)]
            if bad:
                raise OptimizerStepError(
                    f"optimizer 'torch' refused the step, nothing changed: non-finite gradient "
                    f"(NaN or inf) in {', '.join(map(repr, bad))}",
                    optimizer=self, errors={n: "non-finite gradient" for n in bad})
        self.torch_optimizer.step(closure)
        if self._after_step.get_hookimpls():
            self._after_step(optimizer=self, params=self.params, committed=self._committed)
        return self._committed

    def zero_feedback(self, set_to_none: bool = True) -> None:
        for target in self.param_names:
            target.feedback.clear()
        if set_to_none:
            # torch's zero_grad(set_to_none=True) does just this, inside a profiler annotation
            # that costs more than the loop.
            for tensor in self._tensors:
                tensor.grad = None
        else:
            self.torch_optimizer.zero_grad(set_to_none=False)

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
    """Whether gradients are all finite, in one kernel and one read-back per step.

    The gradients go through the fused check ``torch.amp.GradScaler`` uses (scaling by exactly
    1.0, which changes no value), setting a flag on their device; reading it back is the one
    host-device synchronisation a step needs. The flag is zeroed only after it was found set, so
    a clean step launches nothing else. Gradients on other devices than ``device`` (the
    parameters' own, found once) are checked one device at a time; those the kernel refuses
    (sparse, complex) and any set whose flag is set, tensor by tensor.
    """

    __slots__ = ("_kernel", "_flags", "_found", "_one")

    def __init__(self, device: Any) -> None:
        import torch  # a torch optimizer is being built, so torch is wanted

        self._kernel = torch._amp_foreach_non_finite_check_and_unscale_
        self._flags: dict[Any, tuple[torch.Tensor, torch.Tensor]] = {}  # device: (found, one)
        self._found, self._one = self._flags_on(device)

    def all_finite(self, grads: list[torch.Tensor]) -> bool:
        found = self._found
        try:
            self._kernel(grads, found, self._one)
            if not found.item():
                return True
        except RuntimeError:  # several devices, or a layout or dtype the kernel lacks
            found.zero_()
            return self._per_device(grads)
        found.zero_()
        return all(map(_all_finite, grads))

    def _per_device(self, grads: list[torch.Tensor]) -> bool:
        groups: dict[Any, list[torch.Tensor]] = {}
        for grad in grads:
            groups.setdefault(grad.device, []).append(grad)
        for device, members in groups.items():
            found, one = self._flags_on(device)
            try:
                self._kernel(members, found, one)
                if not found.item():
                    continue
            except RuntimeError:  # sparse or complex: checked alone
                pass
            found.zero_()
            if not all(map(_all_finite, members)):
                return False
        return True

    def _flags_on(self, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
        flags = self._flags.get(device)
        if flags is None:
            torch = sys.modules["torch"]
            flags = self._flags[device] = (torch.zeros(1, device=device), torch.ones(1, device=device))
        return flags


def _all_finite(grad: torch.Tensor) -> bool:
    torch = sys.modules["torch"]
    values = grad.coalesce().values() if grad.is_sparse else grad
    return bool(torch.isfinite(values).all())


@hookimpl
def graphopt_optimizers() -> list[type]:
    return [TorchOptimizer]
