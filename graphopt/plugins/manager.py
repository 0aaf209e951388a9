"""The ``graphopt`` plugin manager: one registration path for built-ins and entry points."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
import threading
import traceback
import types
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

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
    "graphopt.optim.gepa",
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
    """A plugin that could not be imported or registered, or whose hook raised; the others load.

    ``entry_point`` is its ``name = module:attr`` line (empty for plugins registered by hand) and
    ``provides`` the names, by table, it contributed before it failed (empty when never known).
    """

    name: str
    distribution: str
    error: BaseException
    entry_point: str = ""
    provides: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def describe(self) -> str:
        """``plugin 'foo' (graphopt-foo)``: how messages name the plugin."""
        return f"plugin {self.name!r} ({self.distribution or 'no distribution'})"

    @property
    def reason(self) -> str:
        """What went wrong, without repeating the plugin's name."""
        if isinstance(self.error, PluginValidationError):
            return str(self.error).removeprefix(f"plugin {self.name!r}: ")
        return f"{type(self.error).__name__}: {self.error}"


class PluginManager(pluggy.PluginManager):
    """``pluggy.PluginManager("graphopt")`` that validates contributions before storing them.

    A plugin whose import, registration or contribution hook fails is disabled on its own: it
    is recorded in ``failures`` with one warning pointing at its module, and the built-ins and
    every other plugin keep working.
    """

    def __init__(self) -> None:
        super().__init__("graphopt")
        self.add_hookspecs(hookspecs)
        self.failures: list[PluginLoadFailure] = []
        self._distributions: dict[str, str] = {}
        self._entry_points: dict[str, str] = {}
        self._provides: dict[str, dict[str, tuple[str, ...]]] = {}
        self._tables: dict[str, dict[str, PluginEntry]] | None = None
        # Re-entrant: building the tables may disable a plugin, which unregisters it.
        self._lock = threading.RLock()

    # -- registration -------------------------------------------------------------------------
    def register(self, plugin: object, name: str | None = None, *, distribution: str = "") -> str | None:
        """Register ``plugin`` after checking every contribution; refuse it whole on any fault."""
        plugin_name = name or self.get_canonical_name(plugin)
        with self._lock:
            contributions = _contributions(plugin, plugin_name)
            self._check_unique(plugin, plugin_name, contributions)
            registered = super().register(plugin, name=plugin_name)
            if registered is not None:
                self._distributions[registered] = distribution
                self._provides[registered] = {
                    table: tuple(names) for table, names in contributions.items()}
            self._tables = None
        return registered

    def unregister(self, plugin: object | None = None, name: str | None = None) -> Any:
        with self._lock:
            removed = super().unregister(plugin=plugin, name=name)
            self._tables = None
        return removed

    def load_builtins(self) -> None:
        """Register graphopt's own plugins, by module name, as entry points are registered."""
        for module_name in BUILTIN_PLUGINS:
            self._load(module_name, lambda: importlib.import_module(module_name), "graphopt",
                       module=module_name)

    def load_entrypoints(self, group: str = ENTRY_POINT_GROUP) -> int:
        """Load every entry point of ``group``; a failing one is recorded in ``failures``."""
        count = 0
        for ep in metadata.entry_points(group=group):
            if self.has_plugin(ep.name) or self.is_blocked(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else ""
            value = getattr(ep, "value", "")
            count += self._load(ep.name, ep.load, dist, entry_point=f"{ep.name} = {value}" if value else "",
                                module=value.partition(":")[0].strip(), declared_in=_entry_points_file(ep))
        return count

    def _load(self, name: str, load: Callable[[], object], distribution: str, *,
              entry_point: str = "", module: str = "", declared_in: tuple[str, int] | None = None) -> bool:
        plugin: object = None
        try:
            plugin = load()
            self.register(plugin, name=name, distribution=distribution)
        except Exception as err:  # a broken plugin must not take the others down
            self._entry_points[name] = entry_point
            self._fail(name, plugin, err, distribution=distribution, module=module,
                       provides=_declared_names(plugin) if plugin is not None else {},
                       declared_in=declared_in)
            return False
        self._entry_points[name] = entry_point
        return True

    def _disable(self, plugin_name: str, plugin: object, err: Exception) -> None:
        """Unregister and block a plugin whose hook failed after it was registered."""
        provides = self._provides.pop(plugin_name, {})
        distribution = self._distributions.pop(plugin_name, "")
        self.set_blocked(plugin_name)
        self._fail(plugin_name, plugin, err, distribution=distribution, provides=provides)

    def _fail(self, name: str, plugin: object, err: Exception, *, distribution: str,
              module: str = "", provides: Mapping[str, tuple[str, ...]],
              declared_in: tuple[str, int] | None = None) -> None:
        failure = PluginLoadFailure(name, distribution, err, self._entry_points.get(name, ""),
                                    dict(provides))
        self.failures.append(failure)
        where = f", entry point '{failure.entry_point}'" if failure.entry_point else ""
        filename, lineno, module_name = _blame(plugin, module, err, declared_in)
        # Point the warning at the plugin's own code, not at this module: that is what to fix.
        warnings.warn_explicit(
            f"graphopt plugin {name!r} ({distribution or 'no distribution'}{where}) failed to load "
            f"and is disabled: {failure.reason}", UserWarning, filename, lineno, module=module_name)

    def _check_unique(self, plugin: object, plugin_name: str,
                      contributions: dict[str, list[str]]) -> None:
        tables = self.tables()
        for table, names in contributions.items():
            for entry_name in names:
                owner = tables[table].get(entry_name)
                if owner is not None:
                    raise PluginValidationError(
                        f"plugin {plugin_name!r}: {_singular(table)} name {entry_name!r} is already "
                        f"provided by plugin {owner.plugin!r}", plugin=plugin)

    # -- lookup -------------------------------------------------------------------------------
    def tables(self) -> dict[str, dict[str, PluginEntry]]:
        """Every contribution, by table ("optimizers", "propagators", "llm_backends") and name.

        A plugin whose hook now raises or returns something invalid is disabled (see
        ``failures``); the tables are built from the others.
        """
        tables = self._tables
        if tables is not None:  # built: no lock on the path every lookup takes
            return tables
        with self._lock:
            while self._tables is None:
                self._tables = self._build_tables()
            return self._tables

    def _build_tables(self) -> dict[str, dict[str, PluginEntry]] | None:
        tables: dict[str, dict[str, PluginEntry]] = {t: {} for t, _, _ in _TABLES.values()}
        for plugin_name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            try:
                entries = _entries(plugin, plugin_name)
                for table, named in entries.items():
                    for entry_name in named:
                        owner = tables[table].get(entry_name)
                        if owner is not None:
                            raise PluginValidationError(
                                f"plugin {plugin_name!r}: {_singular(table)} name {entry_name!r} is "
                                f"already provided by plugin {owner.plugin!r}", plugin=plugin)
            except Exception as err:  # this plugin alone is disabled; start again without it
                self._disable(plugin_name, plugin, err)
                return None
            for table, named in entries.items():
                for entry_name, obj in named.items():
                    tables[table][entry_name] = PluginEntry(
                        entry_name, obj, plugin_name, self._distributions.get(plugin_name, ""))
        return tables

    def lookup(self, table: str, name: str) -> Any:
        """The object registered as ``name`` in ``table``; unknown names list close matches,
        or name the failed plugin that provided them."""
        entries = self.tables()[table]
        entry = entries.get(name)
        if entry is None:
            raise not_found(table, name, entries, failures=self.failures)
        return entry.obj


def _singular(table: str) -> str:
    return table[:-1].replace("_", " ")


def _entries(plugin: object, plugin_name: str) -> dict[str, dict[str, Any]]:
    """What ``plugin``'s contribution hooks return, by table and name, checked against the specs."""
    found: dict[str, dict[str, Any]] = {}
    for hook_name, (table, key, required) in _TABLES.items():
        impl = getattr(plugin, hook_name, None)
        if impl is None:
            continue
        try:
            returned = impl()
        except Exception as err:
            raise PluginValidationError(f"plugin {plugin_name!r}: {hook_name}() raised "
                                        f"{type(err).__name__}: {err}", plugin=plugin) from err
        if not isinstance(returned, (list, tuple)):
            raise PluginValidationError(
                f"plugin {plugin_name!r}: {hook_name}() must return a list, got "
                f"{type(returned).__name__}", plugin=plugin)
        named: dict[str, Any] = {}
        for entry in returned:
            entry_name = getattr(entry, key, None)
            if not isinstance(entry_name, str) or not entry_name:
                raise PluginValidationError(
                    f"plugin {plugin_name!r}: {hook_name}() entry {entry!r} needs a non-empty "
                    f"str attribute {key!r}", plugin=plugin)
            missing = [attr for attr in required if not hasattr(entry, attr)]
            if missing:
                raise PluginValidationError(
                    f"plugin {plugin_name!r}: {_singular(table)} {entry_name!r} "
                    f"lacks {', '.join(missing)}", plugin=plugin)
            if entry_name in named:
                raise PluginValidationError(
                    f"plugin {plugin_name!r}: {_singular(table)} name {entry_name!r} is already "
                    f"provided by plugin {plugin_name!r}", plugin=plugin)
            named[entry_name] = entry
        found[table] = named
    return found


def _contributions(plugin: object, plugin_name: str) -> dict[str, list[str]]:
    return {table: list(named) for table, named in _entries(plugin, plugin_name).items()}


def _declared_names(plugin: object) -> dict[str, tuple[str, ...]]:
    """The names a refused plugin meant to provide, as far as its hooks still answer."""
    names: dict[str, tuple[str, ...]] = {}
    for hook_name, (table, key, _) in _TABLES.items():
        impl = getattr(plugin, hook_name, None)
        try:
            returned = impl() if impl is not None else ()
            names[table] = tuple(n for n in (getattr(e, key, None) for e in returned) if isinstance(n, str))
        except Exception:  # the hook's own failure is already the reported one
            continue
    return names


def _blame(plugin: object, module: str, err: BaseException,
           declared_in: tuple[str, int] | None = None) -> tuple[str, int, str]:
    """File, line and module name of the plugin code to blame for ``err``: the plugin's module,
    else the entry point's line in its distribution's ``entry_points.txt``."""
    if isinstance(plugin, types.ModuleType):
        module_name = plugin.__name__
    elif plugin is not None:
        module_name = type(plugin).__module__
    else:
        module_name = module
    loaded = sys.modules.get(module_name) if module_name else None
    filename = getattr(loaded, "__file__", None) or (_module_origin(module_name) if module_name else None)
    module_name = module_name or "graphopt.plugins"
    frames = [frame for error in _chain(err) for frame in traceback.walk_tb(error.__traceback__)]
    if filename is not None:
        lines = [lineno for frame, lineno in frames if frame.f_code.co_filename == filename]
        return filename, (lines[-1] if lines else 1), module_name
    machinery = ("<", _OWN_DIR, _IMPORTLIB_DIR, *_backport_dirs())
    for frame, lineno in reversed(frames):  # the innermost frame outside the import machinery
        name = frame.f_code.co_filename
        if not name.startswith(machinery):
            return name, lineno, module_name
    if declared_in is not None:  # the module itself could not be found: blame its declaration
        return declared_in[0], declared_in[1], module_name
    return f"<entry point {module_name}>", 1, module_name


def _backport_dirs() -> tuple[str, ...]:
    """The ``importlib_metadata`` backport's folder once something imported it: its finder then
    serves entry points too, and their ``load()`` runs from there."""
    backport = getattr(sys.modules.get("importlib_metadata"), "__file__", None)
    return (os.path.dirname(os.path.abspath(backport)),) if backport else ()


def _entry_points_file(ep: Any) -> tuple[str, int] | None:
    """The ``entry_points.txt`` declaring ``ep`` and the line of its declaration, when found."""
    dist = getattr(ep, "dist", None)
    try:
        files = [f for f in (dist.files or []) if f.name == "entry_points.txt"] if dist is not None else []
        path = str(dist.locate_file(files[0])) if files else None
        lines = Path(path).read_text(encoding="utf-8").splitlines() if path else []
    except (OSError, AttributeError, UnicodeDecodeError):
        return None
    if path is None:
        return None
    found = [i for i, line in enumerate(lines, 1) if line.partition("=")[0].strip() == ep.name]
    return path, (found[0] if found else 1)


def _chain(err: BaseException) -> list[BaseException]:
    """``err`` and the errors it was raised from, outermost first."""
    chain: list[BaseException] = []
    while err is not None and err not in chain:
        chain.append(err)
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return chain


def _module_origin(module_name: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module_name)  # imports the parent package, which may raise
    except Exception:
        return None
    return spec.origin if spec is not None and spec.has_location else None


_OWN_DIR = os.path.dirname(os.path.abspath(__file__))
_IMPORTLIB_DIR = os.path.dirname(os.path.abspath(importlib.__file__))


def not_found(table: str, name: str, entries: Iterable[str], *,
              failures: Iterable[PluginLoadFailure] = ()) -> PluginNotFoundError:
    """The error for an unknown ``name``: the failed plugin that provided it, or else close
    matches, any failed plugin that may provide it, and everything available."""
    available = sorted(entries)
    failures = list(failures)
    for failure in failures:
        if name in failure.provides.get(table, ()):
            return PluginNotFoundError(
                f"{_singular(table)} {name!r} comes from {failure.describe()} which failed to load: "
                f"{failure.reason}", name=name, available=available)
    unknown = [f for f in failures if not f.provides]
    hint = ""
    if unknown:
        hint = "; it may come from " + ", ".join(
            f"{f.describe()}, which failed to load ({f.reason})" for f in unknown)
    close = difflib.get_close_matches(name, available, n=3, cutoff=0.5)
    if close:
        hint += f"; did you mean {', '.join(repr(c) for c in close)}?"
    return PluginNotFoundError(
        f"no {_singular(table)} named {name!r}{hint} available: "
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
