"""The ``graphopt`` plugin manager: one registration path for built-ins and entry points."""

from __future__ import annotations

import difflib
import importlib
import threading
import warnings
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Iterable

import pluggy

from graphopt.errors import PluginNotFoundError, PluginValidationError
from graphopt.plugins import hookspecs

hookimpl = pluggy.HookimplMarker("graphopt")

ENTRY_POINT_GROUP = "graphopt"

# Built-ins are named, not imported, here: they load through the same door as entry points,
# and the plugins layer stays below the layers that implement them.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "graphopt.feedback.propagators",
    "graphopt.optim.torch_optim",
    "graphopt.optim.spsa",
    "graphopt.optim.random_search",
    "graphopt.optim.optoprime",
    "graphopt.optim.textgrad",
    "graphopt.optim.opro",
    "graphopt.optim.evolution",
    "graphopt.optim.fewshot",
    "graphopt.llm.backends",
)

# hook name -> (table name, key attribute, attributes every entry must have)
_TABLES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "graphopt_optimizers": (
        "optimizers", "name", ("kinds", "step", "zero_feedback", "state_dict", "load_state_dict"),
    ),
    "graphopt_propagators": ("propagators", "name", ("propagate",)),
    "graphopt_llm_backends": ("llm_backends", "provider", ("create",)),
}


@dataclass(frozen=True)
class PluginEntry:
    """One named contribution of a plugin: an optimizer class, a propagator or a backend."""

    name: str
    obj: Any
    plugin: str
    distribution: str


@dataclass(frozen=True)
class PluginLoadFailure:
    """A plugin that could not be imported or registered; the others still load."""

    name: str
    distribution: str
    error: BaseException


class PluginManager(pluggy.PluginManager):
    """``pluggy.PluginManager("graphopt")`` that validates contributions before storing them."""

    def __init__(self) -> None:
        super().__init__("graphopt")
        self.add_hookspecs(hookspecs)
        self.failures: list[PluginLoadFailure] = []
        self._distributions: dict[str, str] = {}
        self._tables: dict[str, dict[str, PluginEntry]] | None = None

    # -- registration -------------------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None, *, distribution: str = "") -> str | None:
        """Register ``plugin`` after checking every contribution; refuse it whole on any fault."""
        plugin_name = name or self.get_canonical_name(plugin)
        self._check_contributions(plugin, plugin_name)
        registered = super().register(plugin, name=plugin_name)
        if registered is not None:
            self._distributions[registered] = distribution
        self._tables = None
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        removed = super().unregister(plugin=plugin, name=name)
        self._tables = None
        return removed

    def load_builtins(self) -> None:
        """Register graphopt's own plugins, by module name, as entry points are registered."""
        for module_name in BUILTIN_PLUGINS:
            self._load(module_name, lambda: importlib.import_module(module_name), "graphopt")

    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> int:
        """Load every entry point of ``group``; a failing one is recorded in ``failures``."""
        count = 0
        for ep in metadata.entry_points(group=group):
            if self.has_plugin(ep.name) or self.is_blocked(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else ""
            count += self._load(ep.name, ep.load, dist)
        return count

    def _load(self, name: str, load: Callable[[], object], distribution: str) -> bool:
        try:
            self.register(load(), name=name, distribution=distribution)
        except Exception as err:  # a broken plugin must not take the others down
            self.failures.append(PluginLoadFailure(name, distribution, err))
            warnings.warn(f"graphopt plugin {name!r} ({distribution or 'no distribution'}) "
                          f"failed to load: {type(err).__name__}: {err}", stacklevel=3)
            return False
        return True

    def _check_contributions(self, plugin: object, plugin_name: str) -> None:
        tables = self.tables()
        for hook_name, (table, key, required) in _TABLES.items():
            impl = getattr(plugin, hook_name, None)
            if impl is None:
                continue
            entries = impl()
            if not isinstance(entries, (list, tuple)):
                raise PluginValidationError(
                    f"plugin {plugin_name!r}: {hook_name}() must return a list, got "
                    f"{type(entries).__name__}", plugin=plugin)
            seen: set[str] = set()
            for entry in entries:
                entry_name = getattr(entry, key, None)
                if not isinstance(entry_name, str) or not entry_name:
                    raise PluginValidationError(
                        f"plugin {plugin_name!r}: {hook_name}() entry {entry!r} needs a non-empty "
                        f"str attribute {key!r}", plugin=plugin)
                missing = [attr for attr in required if not hasattr(entry, attr)]
                if missing:
                    raise PluginValidationError(
                        f"plugin {plugin_name!r}: {table[:-1].replace('_', ' ')} {entry_name!r} "
                        f"lacks {', '.join(missing)}", plugin=plugin)
                owner = tables[table].get(entry_name)
                if owner is not None or entry_name in seen:
                    where = owner.plugin if owner is not None else plugin_name
                    raise PluginValidationError(
                        f"plugin {plugin_name!r}: {table[:-1].replace('_', ' ')} name "
                        f"{entry_name!r} is already provided by plugin {where!r}", plugin=plugin)
                seen.add(entry_name)

    # -- lookup -------------------------------------------------------------------------------
    def tables(self) -> dict[str, dict[str, PluginEntry]]:
        """Every contribution, by table ("optimizers", "propagators", "llm_backends") and name."""
        if self._tables is None:
            tables: dict[str, dict[str, PluginEntry]] = {t: {} for t, _, _ in _TABLES.values()}
            for plugin_name, plugin in self.list_name_plugin():
                if plugin is None:
                    continue
                for hook_name, (table, key, _) in _TABLES.items():
                    impl = getattr(plugin, hook_name, None)
                    if impl is None:
                        continue
                    for entry in impl():
                        tables[table][getattr(entry, key)] = PluginEntry(
                            getattr(entry, key), entry, plugin_name,
                            self._distributions.get(plugin_name, ""))
            self._tables = tables
        return self._tables

    def lookup(self, table: str, name: str) -> Any:
        """The object registered as ``name`` in ``table``; unknown names list close matches."""
        entries = self.tables()[table]
        entry = entries.get(name)
        if entry is None:
            raise not_found(table, name, entries)
        return entry.obj


def not_found(table: str, name: str, entries: Iterable[str]) -> PluginNotFoundError:
    """The error for an unknown ``name``, naming close matches and everything available."""
    available = sorted(entries)
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return PluginNotFoundError(
        f"no {table[:-1].replace('_', ' ')} named {name!r}{hint} available: "
        f"{', '.join(available) or 'none'}", name=name, available=available)


_default: PluginManager | None = None
_default_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide manager, built (built-ins, then entry points) on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                manager = PluginManager()
                manager.load_builtins()
                manager.load_entrypoints()
                _default = manager
    return _default


def available(table: str = "optimizers", *, plugin_manager: PluginManager | None = None
              ) -> dict[str, PluginEntry]:
    """Registered contributions of ``table`` by name, with the distribution providing each."""
    manager = plugin_manager or get_plugin_manager()
    tables = manager.tables()
    if table not in tables:
        raise ValueError(f"unknown plugin table {table!r}; expected one of {', '.join(tables)}")
    return dict(sorted(tables[table].items()))
