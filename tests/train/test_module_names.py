"""One qualified name per param in a run: optimizer, checkpoint, history and result agree."""

from __future__ import annotations

import graphopt as go
from graphopt.llm.scripted import follow_schema, scripted_client
from graphopt.train import Checkpoint


class Stage(go.Module):
    def __init__(self, text):
        self.prompt = go.param(text, name="prompt")

    def forward(self, text):
        return go.ops.format("{} {}", self.prompt, text)


class Pipeline(go.Module):
    def __init__(self):
        self.router = Stage("Route:")
        self.answer = Stage("Answer:")

    def forward(self, text):
        return self.answer(self.router(text))


def test_a_module_and_its_parameter_list_train_under_the_same_dotted_names(tmp_path):
    model = Pipeline()
    opt = go.optimizer("optoprime", list(model.parameters()), llm=scripted_client(follow_schema))
    data = [{"id": "a", "input": {"text": "x"}, "target": "Answer: Route: x"}]
    result = go.optimize(model, data, metric=lambda e, p: float(p == e.target), optimizers=opt,
                         checkpoint=tmp_path / "run.ckpt", quiet=True)
    names = ["router.prompt", "answer.prompt"]
    assert list(result.best_values) == names
    saved = Checkpoint.load(tmp_path / "run.ckpt")
    assert list(saved.params) == names and list(saved.kinds) == names
    assert saved.optimizers[0]["param_groups"][0]["params"] == names
    fresh = Pipeline()
    fresh.load(tmp_path / "run.ckpt")
    assert fresh.state_dict() == result.best_values
