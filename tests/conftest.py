"""Shared fixtures: a fresh plugin manager per test; nothing global to clear."""

from __future__ import annotations

import pytest

from graphopt.plugins import PluginManager


@pytest.fixture
def plugin_manager() -> PluginManager:
    manager = PluginManager()
    manager.load_builtins()
    return manager
