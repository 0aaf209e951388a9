"""``runconfig``: option checks against optimizer constructors, strict settings."""

from __future__ import annotations

import inspect

import pytest

from graphopt.cli.runconfig import check_options, make_config
from graphopt.plugins import available


def test_every_builtin_optimizer_accepts_its_own_defaults(plugin_manager):
    for name, entry in available(plugin_manager=plugin_manager).items():
        defaults = {key: p.default for key, p in inspect.signature(entry.obj).parameters.items()
                    if p.default is not inspect.Parameter.empty and key != "plugin_manager"}
        assert check_options(name, entry.obj, defaults) == defaults, name


def test_wrong_option_types_name_the_option(plugin_manager):
    optoprime = plugin_manager.lookup("optimizers", "optoprime")
    with pytest.raises(ValueError, match="optimizer 'optoprime': option 'max_tokens' expects int, got '1k'"):
        check_options("optoprime", optoprime, {"max_tokens": "1k"})
    with pytest.raises(ValueError, match="option 'partial' expects bool, got 'yes'"):
        check_options("optoprime", optoprime, {"partial": "yes"})
    with pytest.raises(ValueError, match="unknown option 'max_token'; did you mean 'max_tokens'"):
        check_options("optoprime", optoprime, {"max_token": 5})


def test_settings_from_the_command_line_name_the_option(tmp_path):
    (tmp_path / "t.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="^option --batch-size: setting 'batch_size' expects greater than or "
                                         "equal to 1, got 0$"):
        make_config({"workflow": "f.py:f", "data": str(tmp_path / "t.jsonl"), "optimizers": ["random"],
                     "batch_size": 0}, origin={"batch_size": "option --batch-size"})


def test_lists_from_a_config_file_become_the_tuples_an_option_expects():
    class Optimizer:
        def __init__(self, params, *, betas: tuple[float, float] = (0.9, 0.99), kinds: frozenset[str] = frozenset(),
                     plugin_manager=None):
            pass

    assert check_options("x", Optimizer, {"betas": [0.5, 0.6], "kinds": ["text"]}) == \
        {"betas": (0.5, 0.6), "kinds": frozenset({"text"})}
    with pytest.raises(ValueError, match="option 'betas' expects tuple\\[float, float\\], got \\['a', 0.6\\]"):
        check_options("x", Optimizer, {"betas": ["a", 0.6]})
