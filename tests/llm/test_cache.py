import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import diskcache
import pytest

from graphopt.llm import Client, Reply, clear_cache, stats
from graphopt.llm.cache import JSONTextDisk, ReplyCache, shared_cache


def rows(directory: Path) -> list[tuple[Any, int]]:
    with sqlite3.connect(directory / "cache.db") as db:
        return db.execute("SELECT value, mode FROM Cache").fetchall()


def test_cache_is_not_opened_until_first_request(make_client: Callable[..., Client], tmp_path: Path) -> None:
    client = make_client()
    assert not (tmp_path / "cache").exists()
    client.complete("hi")
    assert (tmp_path / "cache" / "llm" / "cache.db").is_file()


def test_second_identical_request_is_served_from_cache(client: Client, scripted: Any) -> None:
    first = client.complete("hello", max_tokens=5)
    second = client.complete("hello", max_tokens=5)
    assert len(scripted.created[0].calls) == 1
    assert (first.cached, second.cached) == (False, True)
    assert second.text == first.text == "HELLO"
    assert second.cost == 0.0 and second.usage == first.usage


def test_values_are_json_text_without_secrets(make_client: Callable[..., Client], tmp_path: Path) -> None:
    client = make_client(api_key="sk-very-secret")
    client.complete("hello")
    stored = rows(tmp_path / "cache" / "llm")
    assert len(stored) == 1
    value, mode = stored[0]
    assert mode in (diskcache.core.MODE_RAW, diskcache.core.MODE_TEXT)
    assert json.loads(value)["text"] == "HELLO"
    everything = b"".join(p.read_bytes() for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert b"sk-very-secret" not in everything


def test_pickled_entry_is_refused_and_counted_as_error(tmp_path: Path) -> None:
    with diskcache.Cache(str(tmp_path)) as raw:
        raw.set("k", {"text": "pickled"})
    cache = ReplyCache(tmp_path)
    assert cache.get("k") is None
    assert cache.errors == 1 and cache.hits == 0


def test_cache_refuses_to_store_anything_but_text(tmp_path: Path) -> None:
    disk = JSONTextDisk(str(tmp_path))
    with pytest.raises(TypeError, match="JSON text"):
        disk.store({"a": 1}, False)


def test_cache_timeout_is_counted_and_call_goes_to_model(client: Client, scripted: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def locked(*args: Any, **kwargs: Any) -> Any:
        raise diskcache.Timeout("database is locked")

    store = client.cache._open()  # type: ignore[union-attr]
    monkeypatch.setattr(store, "get", locked)
    monkeypatch.setattr(store, "set", locked)
    reply = client.complete("hello")
    assert reply.text == "HELLO" and not reply.cached
    assert client.cache.errors == 2  # type: ignore[union-attr]
    assert stats().errors >= 2


def test_sampled_request_is_not_cached_without_rollout_id(client: Client, scripted: Any) -> None:
    client.complete("hi", temperature=0.7)
    again = client.complete("hi", temperature=0.7)
    assert not again.cached and len(scripted.created[0].calls) == 2
    assert client.cache.bypassed == 2  # type: ignore[union-attr]


def test_sampled_request_is_cached_per_rollout_id(client: Client, scripted: Any) -> None:
    client.complete("hi", temperature=0.7, rollout_id=1)
    assert client.complete("hi", temperature=0.7, rollout_id=1).cached
    assert not client.complete("hi", temperature=0.7, rollout_id=2).cached
    assert len(scripted.created[0].calls) == 2


def test_sampled_request_is_cached_when_asked(make_client: Callable[..., Client]) -> None:
    client = make_client()
    client.complete("hi", temperature=0.7, cache=True)
    assert client.complete("hi", temperature=0.7, cache=True).cached
    always = make_client(cache_sampled=True)
    assert always.complete("hi", temperature=0.7).cached


def test_off_switch_per_call_and_in_settings(make_client: Callable[..., Client], scripted: Any) -> None:
    client = make_client()
    client.complete("hi")
    assert not client.complete("hi", cache=False).cached
    off = make_client(cache=False)
    assert off.cache is None
    off.complete("x")
    assert not off.complete("x").cached


def test_default_temperature_is_explicit_and_greedy(client: Client, scripted: Any) -> None:
    client.complete("hi")
    assert scripted.created[0].calls[0][1]["temperature"] == 0.0


def test_clear_cache_removes_entries(client: Client, tmp_path: Path) -> None:
    client.complete("a")
    client.complete("b")
    assert clear_cache(tmp_path / "cache" / "llm") == 2
    assert not client.complete("a").cached


def test_clear_cache_defaults_to_configured_directory(monkeypatch: pytest.MonkeyPatch,
                                                      make_client: Callable[..., Client],
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("GRAPHOPT_CACHE_DIR", str(tmp_path / "cache"))
    make_client().complete("a")
    assert clear_cache() == 1


def test_one_cache_object_per_directory(tmp_path: Path) -> None:
    assert shared_cache(tmp_path) is shared_cache(tmp_path / "sub" / "..")


WRITER = textwrap.dedent("""
    import sys
    from graphopt.llm import Reply
    from graphopt.llm.cache import ReplyCache
    cache = ReplyCache(sys.argv[1])
    for i in range(int(sys.argv[3])):
        cache.set(f"{sys.argv[2]}-{i}", Reply(text=f"{sys.argv[2]} {i}", model="m"))
        cache.set("shared", Reply(text=sys.argv[2], model="m"))
    assert cache.errors == 0, cache.errors
""")


def test_two_processes_write_one_cache(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(directory), name, "50"])
               for name in ("left", "right")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    cache = ReplyCache(directory)
    assert len(cache) == 101
    assert cache.get("left-49").text == "left 49"  # type: ignore[union-attr]
    assert cache.get("right-0").text == "right 0"  # type: ignore[union-attr]
    assert cache.get("shared").text in ("left", "right")  # type: ignore[union-attr]
    assert isinstance(cache.get("shared"), Reply)
