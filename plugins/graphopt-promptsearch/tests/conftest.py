"""A fresh plugin manager per test, holding the built-ins and installed entry points."""

from __future__ import annotations

import pytest

from graphopt import testing
from graphopt.plugins import PluginManager


@pytest.fixture
def plugin_manager() -> PluginManager:
    return testing.default_plugin_manager()
