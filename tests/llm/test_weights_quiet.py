"""The embedded model loads from its converted cache without transformers' progress bars."""

from __future__ import annotations

import pytest

from graphopt.llm.config import load_settings
from graphopt.llm.local import weights


def test_progress_bars_are_off_inside_the_block_and_restored_after():
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    with weights.progress_bars_off():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    with weights.progress_bars_off():
        pass
    assert not hf_logging.is_progress_bar_enabled()  # left as it was
    hf_logging.enable_progress_bar()


@pytest.mark.slow
def test_loading_the_converted_model_prints_no_loading_bar(capfd):
    cache = load_settings().model_cache_dir
    weights.load(cache)  # converts on the first run on this machine (bars allowed then)
    capfd.readouterr()
    loaded = weights.load(cache)
    assert loaded.source == "safetensors"
    assert "Loading weights" not in capfd.readouterr().err
