"""``optimizer(name, params, **config)``: build an optimizer found in the plugin registry."""

from __future__ import annotations

from typing import Any

from graphopt.optim.optimizer import Optimizer, ParamsArg
from graphopt.plugins.manager import PluginManager, get_plugin_manager


def optimizer(name: str, params: ParamsArg, *, plugin_manager: PluginManager | None = None,
              **config: Any) -> Optimizer:
    """The optimizer plugin registered as ``name``, over ``params``, configured by ``config``.

    An unknown name raises ``PluginNotFoundError`` listing close matches and what is available;
    a parameter of a kind the optimizer does not handle raises ``ParamValidationError``.
    """
    manager = plugin_manager or get_plugin_manager()
    cls = manager.lookup("optimizers", name)
    return cls(params, plugin_manager=manager, **config)
