"""``backward``: feedback from an output to the parameters behind it, torch gradients included."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from graphopt.errors import TraceError
from graphopt.feedback.feedback import ErrorInfo, Feedback
from graphopt.graph.node import Error, Node
from graphopt.graph.walk import minimal_subgraph
from graphopt.plugins.manager import PluginManager, get_plugin_manager

if TYPE_CHECKING:
    import torch


def backward(output: Node, feedback: Any = None, *, propagator: str = "default",
             retain_graph: bool = False, plugin_manager: PluginManager | None = None) -> None:
    """Propagate ``feedback`` about ``output`` to every trainable parameter it depends on.

    ``feedback`` may be a ``Feedback`` or anything ``Feedback.coerce`` takes. Left out, it is the
    output's error (for an ``Error`` node) or its value as a loss (for a scalar tensor with grad).
    A loss (given, or the output's own scalar tensor with grad) runs torch autograd, so tensor parameters get ``.grad``; text, score
    and error parts reach every parameter through the named propagator. Repeated calls accumulate.
    """
    if not isinstance(output, Node):
        raise TraceError(f"backward expects a graphopt Node, got {type(output).__name__}; "
                         f"call ops on params so the output is traced")
    own_loss = _scalar_with_grad(output.value)
    resolved = _resolve(output, feedback, own_loss)
    subgraph = minimal_subgraph((output,))
    # Nothing here reads a tensor's value (no .item(), no bool() of a tensor): no host-device
    # synchronisation beyond autograd's own, so a GPU keeps running ahead of the Python.
    loss = resolved.loss if resolved.loss is not None else own_loss
    if loss is not None and loss.requires_grad:
        loss.backward(retain_graph=retain_graph)
    manager = plugin_manager or get_plugin_manager()
    manager.lookup("propagators", propagator).propagate(subgraph, resolved)


def _resolve(output: Node, feedback: Any, own_loss: Any) -> Feedback:
    if feedback is None:
        if own_loss is not None:
            return Feedback.of_loss(own_loss)
        if isinstance(output, Error):
            return Feedback(error=ErrorInfo.from_exception(output.value, output.traceback))
        raise TraceError(f"backward from {output.label!r} needs feedback: its value is neither an "
                         f"error nor a scalar tensor requiring grad", node=output)
    return Feedback.coerce(feedback)


def _scalar_with_grad(value: Any) -> torch.Tensor | None:
    # kinds.is_tensor inlined: a tensor exists only once something imported torch.
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor) and value.requires_grad \
            and value.numel() == 1:
        return value
    return None
