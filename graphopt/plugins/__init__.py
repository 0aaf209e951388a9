"""Plugin registry: pluggy hookspecs, the ``graphopt`` manager and entry-point loading."""

from graphopt.plugins.hookspecs import hookspec
from graphopt.plugins.manager import (
    PluginEntry,
    PluginLoadFailure,
    PluginManager,
    available,
    get_plugin_manager,
    hookimpl,
)

__all__ = [
    "PluginEntry", "PluginLoadFailure", "PluginManager", "available", "get_plugin_manager",
    "hookimpl", "hookspec",
]
