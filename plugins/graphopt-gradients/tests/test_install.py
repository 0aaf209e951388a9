"""Installed, the distribution is found through its entry point, with its three optimizers."""

from __future__ import annotations

from importlib import metadata

from graphopt.plugins import available


def test_the_entry_point_belongs_to_the_distribution():
    [entry_point] = [ep for ep in metadata.entry_points(group="graphopt") if ep.name == "gradients"]
    assert entry_point.dist.name == "graphopt-gradients"
    assert entry_point.value == "graphopt_gradients.plugin"


def test_the_plugin_manager_finds_each_optimizer(plugin_manager):
    listed = available(plugin_manager=plugin_manager)
    for name in ("greater", "mezo", "lion"):
        assert (listed[name].plugin, listed[name].distribution) == ("gradients", "graphopt-gradients")
