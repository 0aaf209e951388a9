"""One step of each LLM optimizer on the embedded model: it completes, and every parameter is
either changed to a valid value or left as it was with the reason recorded.

The model is loaded once for the module; replies are kept short so the module fits CI's two cores.
"""

from __future__ import annotations

import pytest

import graphopt as go
from graphopt.llm import Client, backends, get
from graphopt.plugins.manager import PluginManager

pytestmark = pytest.mark.slow


@go.op
def describe(instruction: str, number: int) -> str:
    """Writes `number` following `instruction`."""
    return f"{instruction} {number}"


@go.op(trainable=True)
def double(x: int) -> int:
    return x + 1


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Client:
    manager = PluginManager()
    manager.register(backends, name="graphopt.llm.backends")
    client = get("local/smollm2", cache_dir=tmp_path_factory.mktemp("graphopt-cache"),
                 plugin_manager=manager)
    client.backend.engine  # load once, here
    return client


@pytest.fixture
def workflow():
    double.code.assign(double._original_source)
    double.code.feedback.clear()
    instruction = go.param("Say the number.", name="instruction")
    count = go.param(3, name="count", space=go.Int(1, 9))
    style = go.param("plain", name="style", space=go.Choice(["plain", "bold"]))
    yield [instruction, count, style, double.code]
    double.code.assign(double._original_source)
    double.code.feedback.clear()


def run_and_step(name: str, params, local: Client, feedback, **config) -> None:
    instruction, count, style, code = params
    opt = go.optimizer(name, params, llm=local, **config)
    before = {opt.param_names[p]: p.value for p in params}
    out = describe(instruction, double(count))
    go.backward(out, feedback)
    committed = opt.step()
    for target in params:
        name_ = opt.param_names[target]
        target.validate(target.value)  # never an invalid value
        if name_ in committed:
            assert target.value == committed[name_] != before[name_]
        else:
            assert target.value == before[name_]
    if not committed:
        assert opt.last_step["reason"], "an unchanged step must say why"
    assert local.ledger.by_tag()[name]["calls"] + local.ledger.by_tag()[name]["cached_calls"] >= 1


def test_optoprime_step(local, workflow):
    run_and_step("optoprime", workflow, local, "double(3) should be 6: the function adds instead of "
                 "multiplying", max_tokens=160, max_prompt_tokens=1_200)


def test_textgrad_step(local, workflow):
    run_and_step("textgrad", workflow, local, "double(3) should be 6", max_tokens=48)


def test_opro_step(local, workflow):
    run_and_step("opro", workflow, local, go.Feedback(score=0.2, text="wrong number"), max_tokens=120)
