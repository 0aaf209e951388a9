"""The ``executor``/``address`` run settings (Ray runs themselves: tests/runtime/test_ray.py)."""

from __future__ import annotations

import pytest

from graphopt.cli.runconfig import make_config


def settings(tmp_path, **extra):
    (tmp_path / "t.jsonl").write_text("{}\n")
    return {"workflow": "f.py:f", "data": str(tmp_path / "t.jsonl"), "optimizers": ["random"], **extra}


def test_the_executor_defaults_to_threads_and_takes_ray_with_an_address(tmp_path):
    assert make_config(settings(tmp_path)).executor == "threads"
    config = make_config(settings(tmp_path, executor="ray", address="ray://head:10001"))
    assert (config.executor, config.address) == ("ray", "ray://head:10001")


def test_an_unknown_executor_names_the_option_and_the_choices(tmp_path):
    with pytest.raises(ValueError, match="option --executor: setting 'executor' expects.*'threads' or 'ray'"):
        make_config(settings(tmp_path, executor="dask"), origin={"executor": "option --executor"})


def test_graphopt_eval_refuses_an_unknown_executor_by_name(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from graphopt.cli.app import app

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "flow.py").write_text("def flow(x):\n    return x\n")
    (tmp_path / "data.jsonl").write_text('{"input": {"x": 1}, "target": 1}\n')
    done = CliRunner().invoke(app, ["eval", f"{tmp_path / 'flow.py'}:flow", "--data",
                                    str(tmp_path / "data.jsonl"), "--executor", "dask"])
    assert done.exit_code != 0
    assert "executor expects one of threads, ray" in done.output
