from pathlib import Path

import pytest

from graphopt.llm import config
from graphopt.llm.config import DEFAULT_MODEL, ENVIRONMENT, LLMSettings, load_settings


def test_defaults_without_arguments_or_environment() -> None:
    settings = load_settings()
    assert settings.model == DEFAULT_MODEL == "local/smollm2"
    assert settings.cache is True
    assert settings.torch_threads == 1
    assert settings.omp_wait_policy == "PASSIVE"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRAPHOPT_MODEL", "openai/gpt-4o-mini")
    monkeypatch.setenv("GRAPHOPT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("GRAPHOPT_LLM_RETRIES", "5")
    settings = load_settings()
    assert (settings.model, settings.cache_dir, settings.retries) == ("openai/gpt-4o-mini", tmp_path, 5)
    assert settings.llm_cache_dir == tmp_path / "llm"


def test_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHOPT_MODEL", "openai/gpt-4o-mini")
    assert load_settings(model="local/smollm2").model == "local/smollm2"
    assert load_settings(model=None).model == "openai/gpt-4o-mini"


@pytest.mark.parametrize("value", ["off", "0", "false", "No"])
def test_cache_off_switch_from_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GRAPHOPT_CACHE", value)
    assert load_settings().cache is False


def test_bad_environment_value_names_variable_and_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHOPT_TORCH_THREADS", "zero")
    with pytest.raises(ValueError, match=r"'torch_threads' \(from \$GRAPHOPT_TORCH_THREADS\).*'zero'"):
        load_settings()


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown LLM setting.*'temprature'"):
        load_settings(temprature=0.5)


def test_every_field_has_one_documented_variable() -> None:
    assert set(ENVIRONMENT) == set(LLMSettings.model_fields)
    for variable in ENVIRONMENT.values():
        assert variable in (config.__doc__ or "")
