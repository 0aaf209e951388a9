import json

import pytest
import torch

import graphopt as go
from graphopt.llm.scripted import follow_schema, scripted_client


class Planner(go.Module):
    def __init__(self):
        self.prompt = go.param("Plan the steps.", name="planner_prompt")
        self.tools = [go.param(2, name="k", space=go.Int(1, 5))]

    @go.op(trainable=True)
    def parse(self, reply):
        return reply.split()


class Agent(go.Module):
    def __init__(self):
        self.system = go.param("Be brief.", name="system")
        self.planner = Planner()
        self.heads = {"score": go.param(torch.zeros(2, requires_grad=True), name="head")}
        self.alias = self.system  # shared: reported once

    @property
    def expensive(self):
        raise AssertionError("properties must not be evaluated")


def test_named_parameters_walks_attributes_containers_nested_modules_and_trainable_methods():
    agent = Agent()
    names = [n for n, _ in agent.named_parameters()]
    assert names == ["system", "planner.parse.code", "planner.prompt", "planner.tools.0", "heads.score"]
    assert len(list(agent.parameters())) == 5


def test_traced_method_of_a_module_works_and_self_is_not_traced():
    planner = Planner()
    out = planner.parse("a b")
    assert out.value == ["a", "b"]
    assert out.parents == (Planner.parse.code,)


def test_state_dict_round_trips_through_json():
    agent = Agent()
    state = json.loads(json.dumps(agent.state_dict()))
    other = Agent()
    other.system.assign("changed")
    other.load_state_dict(state)
    assert other.system.value == "Be brief."


def test_load_state_dict_checks_everything_before_assigning():
    agent = Agent()
    state = agent.state_dict()
    state["system"] = "new"
    state["planner.tools.0"] = 99  # out of Int(1, 5)
    with pytest.raises(go.ParamValidationError, match=r"planner.tools.0: .*Int\(1, 5\)"):
        agent.load_state_dict(state)
    assert agent.system.value == "Be brief."
    with pytest.raises(go.ParamValidationError, match="unknown params: bogus"):
        agent.load_state_dict({**agent.state_dict(), "bogus": 1})
    with pytest.raises(go.ParamValidationError, match="missing params"):
        agent.load_state_dict({"system": "x"})


def test_save_and_load_use_json_and_safetensors(tmp_path):
    agent = Agent()
    with torch.no_grad():
        agent.heads["score"].value.copy_(torch.tensor([1.5, -2.0]))
    path = tmp_path / "agent.json"
    agent.save(path)
    data = json.loads(path.read_text())
    assert data["params"]["heads.score"] == {"kind": "tensor", "tensor": "heads.score"}
    assert (tmp_path / "agent.json.safetensors").exists()
    assert not list(tmp_path.glob("*.tmp"))
    fresh = Agent()
    fresh.load(path)
    assert torch.equal(fresh.heads["score"].value.detach(), torch.tensor([1.5, -2.0]))
    assert fresh.system.value == "Be brief."


class Classifier(go.Module):
    def __init__(self, text):
        self.prompt = go.param(text, name="prompt")

    def forward(self, question):
        return go.ops.format("{}: {}", self.prompt, question)


class TwoStage(go.Module):
    def __init__(self):
        self.router = Classifier("Route it.")
        self.answer = Classifier("Answer it.")
        self.sp = go.param("Be kind.", name="system_prompt")

    def forward(self, question):
        return self.answer(self.router(question))


def test_calling_a_module_runs_forward():
    out = TwoStage()("q")
    assert out.value == "Answer it.: Route it.: q"


def test_a_module_without_forward_says_so_when_called():
    with pytest.raises(NotImplementedError, match="module Planner defines no forward"):
        Planner()("x")


def test_params_carry_their_dotted_name_as_soon_as_they_are_set():
    model = TwoStage()
    assert model.router.prompt.name == "router.prompt"
    assert model.answer.prompt.name == "answer.prompt"
    assert model.sp.name == "sp"
    assert repr(model.sp).startswith("Param('sp'")


def test_module_and_its_parameter_list_name_params_alike_in_optimizers():
    model = TwoStage()
    llm = scripted_client(follow_schema)
    by_module = go.optimizer("optoprime", model, llm=llm)
    by_list = go.optimizer("optoprime", list(model.parameters()), llm=llm)
    names = ["router.prompt", "answer.prompt", "sp"]
    assert list(by_module.param_names.values()) == names
    assert list(by_list.param_names.values()) == names
    assert list(by_list.state_dict()["state"]) == list(by_module.state_dict()["state"])
    assert list(model.state_dict()) == names


def test_a_list_grown_after_assignment_is_named_on_the_next_walk():
    agent = Agent()
    extra = go.param(3, name="extra", space=go.Int(1, 5))
    agent.planner.tools.append(extra)
    assert dict(agent.named_parameters())["planner.tools.1"] is extra
    assert extra.name == "planner.tools.1"


def test_load_names_the_file_and_both_accepted_formats(tmp_path):
    (tmp_path / "other.json").write_text('{"format": "something/1"}')
    with pytest.raises(go.ParamValidationError, match="expected 'graphopt.params/1' or a "
                                                      "'graphopt.checkpoint/1' checkpoint"):
        Agent().load(tmp_path / "other.json")
    with pytest.raises(go.ParamValidationError, match="missing.json: cannot read parameter values"):
        Agent().load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="values expects 'best' or 'last'"):
        Agent().load(tmp_path / "other.json", values="worst")
