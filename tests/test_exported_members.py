import types

import graphopt as go


def test_all_matches_public_names():
    # Lazily exported names appear in dir() before first use; submodules imported later (e.g. by
    # a plugin) become package attributes too, so only the non-module public names must match.
    public = {name for name in dir(go)
              if not name.startswith("_") and not isinstance(getattr(go, name), types.ModuleType)}
    exported = {name for name in go.__all__ if not isinstance(getattr(go, name), types.ModuleType)}
    assert exported == public
    assert all(hasattr(go, name) for name in go.__all__)


def test_reprs_say_graphopt():
    assert go.Param.__module__ == "graphopt"
    assert go.Feedback.__module__ == "graphopt"
    assert go.Optimizer.__module__ == "graphopt" and go.Budget.__module__ == "graphopt"
    assert repr(go.param(1, name="x")) == "Param('x', int, value=1)"
