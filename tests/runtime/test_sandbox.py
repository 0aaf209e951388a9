"""The sandbox's normal behaviour: where code runs, what crosses, settings, limits and the pool."""

from __future__ import annotations

import asyncio
import json
import math
from math import floor
import os
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import graphopt as go
from graphopt.runtime.sandbox import (
    CannotCross,
    Limits,
    SandboxError,
    SandboxPool,
    current_mode,
    sandbox,
)

SCALE = 3


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(Limits(timeout=5.0), workers=2) as made:
        yield made


@go.op(trainable=True)
def where(x):
    return [os.getpid(), x + 1]


def run_candidate(op, source, *args, **kwargs):
    original = op.code.value
    op.code.assign(source)
    try:
        return op(*args, **kwargs)
    finally:
        op.code.assign(original)


def test_original_source_runs_in_process_and_a_candidate_in_a_worker(pool):
    with sandbox(pool=pool):
        assert where(1).value == [os.getpid(), 2]
        pid, value = run_candidate(where, "def where(x):\n    import os\n    return [os.getpid(), x * 2]\n", 4).value
    assert value == 8 and pid != os.getpid() and pid in pool.pids()


def test_sandbox_true_runs_the_original_in_a_worker_too(pool):
    @go.op(trainable=True, sandbox=True)
    def own(x):
        return os.getpid()

    with sandbox(pool=pool):
        assert own(0).value in pool.pids()


def test_sandbox_false_runs_candidates_in_process(pool):
    @go.op(trainable=True, sandbox=False)
    def local(x):
        return 0

    assert run_candidate(local, "def local(x):\n    import os\n    return os.getpid()\n", 0).value == os.getpid()


def test_run_level_setting_applies_to_ops_without_their_own(pool):
    assert current_mode() == "auto"
    with sandbox(False):
        assert current_mode() is False
        pid, _ = run_candidate(where, "def where(x):\n    import os\n    return [os.getpid(), x]\n", 1).value
        assert pid == os.getpid()
    with sandbox(True, pool=pool):
        assert where(1).value[0] in pool.pids()
    assert current_mode() == "auto"


def test_options_are_checked_with_messages_naming_them():
    with pytest.raises(ValueError, match="@op option 'sandbox' .* expects 'auto', True or False, got 'yes'"):
        go.op(trainable=True, sandbox="yes")(lambda x: x)

    def plain(x):
        return x

    with pytest.raises(ValueError, match="applies to trainable ops; 'test_options.*plain' is not trainable"):
        go.op(sandbox=True)(plain)
    with pytest.raises(ValueError, match="sandbox mode expects 'auto', True or False, got 1"):
        with sandbox(1):
            pass
    with pytest.raises(ValueError, match="sandbox option 'timeout' expects a positive number, got -1"):
        Limits(timeout=-1)
    with pytest.raises(ValueError, match="sandbox option 'memory_mb' expects a positive number or None, got nan"):
        Limits(memory_mb=float("nan"))
    with pytest.raises(TypeError, match="the options are those of Limits"):
        with sandbox(memroy_mb=5):
            pass
    with pytest.raises(ValueError, match="'workers' expects an int >= 1, got 0"):
        SandboxPool(workers=0)


def test_a_block_with_its_own_limits_gets_its_own_pool_closed_on_exit():
    with sandbox(timeout=3.0, workers=1) as own:
        assert own.limits.timeout == 3.0
        pid = run_candidate(where, "def where(x):\n    import os\n    return [os.getpid(), x]\n", 1).value[0]
        assert own.pids() == [pid]
    assert own.pids() == [] and not os.path.exists(f"/proc/{pid}")
    with sandbox(pool=own):
        out = run_candidate(where, "def where(x):\n    return x\n", 1)
    assert isinstance(out.exception, SandboxError) and str(out.exception) == "op 'where': the sandbox pool is closed"


def test_candidate_sees_modules_data_globals_closures_and_importable_functions(pool):
    offset = 10

    @go.op(trainable=True)
    def uses(x):
        return json.dumps(x) + str(math.floor(offset)) + str(SCALE)

    source = ("def uses(x):\n    return [json.loads(json.dumps(x)), math.sqrt(x['n']), offset, SCALE,\n"
              "            floor(2.5)]\n")
    with sandbox(pool=pool):
        out = run_candidate(uses, source, {"n": 16})
    assert out.value == [{"n": 16}, 4.0, 10, 3, 2]


def test_a_name_that_cannot_cross_is_explained_in_the_name_error(pool):
    lock = threading.Lock()

    @go.op(trainable=True)
    def guarded(x):
        with lock:
            return x

    with sandbox(pool=pool):
        out = run_candidate(guarded, "def guarded(x):\n    with lock:\n        return x + 1\n", 1)
    assert isinstance(out.exception, NameError)
    assert any("'lock' is a lock in the op's globals and cannot enter the sandbox" in n
               for n in out.exception.__notes__)


def test_builtin_exceptions_come_back_as_themselves_with_the_worker_traceback(pool):
    with sandbox(pool=pool):
        out = run_candidate(where, "def where(x):\n    return {}['missing']\n", 1)
    assert type(out.exception) is KeyError and out.exception.args == ("missing",)
    assert 'File "<graphopt candidate where>", line 2, in where' in out.exception.__notes__[0]


def test_exception_of_a_candidate_defined_class_is_a_candidate_error(pool):
    source = "class Odd(Exception):\n    pass\n\ndef where(x):\n    raise Odd('strange')\n"
    with sandbox(pool=pool):
        out = run_candidate(where, source, 1)
    assert isinstance(out.exception, go.runtime.sandbox.CandidateError)
    assert str(out.exception) == "op 'where': Odd: strange" and out.exception.type_name == "Odd"


def test_syntax_errors_are_found_in_process_without_a_worker(pool):
    where.code.value = "def where(x):\n    return (\n"
    try:
        with sandbox(pool=pool):
            out = where(1)
    finally:
        where.code.value = where._original_source
    assert isinstance(out.exception, SyntaxError)


def test_tensors_cross_both_ways_detached_on_cpu(pool):
    @go.op(trainable=True)
    def scale(t):
        return t

    weights = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()  # not contiguous
    with sandbox(pool=pool):
        out = run_candidate(scale, "def scale(t):\n    return {'double': t * 2, 'shape': tuple(t.shape)}\n",
                            weights)
    assert torch.equal(out.value["double"], weights * 2) and out.value["shape"] == (3, 2)


def test_method_receiver_crosses_as_its_data_attributes(pool):
    class Agent(go.Module):
        def __init__(self):
            self.prefix = "A:"
            self.lock = threading.Lock()

        @go.op(trainable=True)
        def label(self, text):
            return text

    agent = Agent()
    with sandbox(pool=pool):
        assert run_candidate(Agent.label, "def label(self, text):\n    return self.prefix + text\n",
                             agent, "x").value == "A:x"
        bound = agent.label
        Agent.label.code.assign("def label(self, text):\n    return self.lock\n")
        try:
            out = bound("x")
        finally:
            Agent.label.code.assign(Agent.label._original_source)
    assert isinstance(out.exception, AttributeError)
    assert str(out.exception).startswith("Agent.lock is not available in the sandbox")


def test_async_candidates_run_in_the_sandbox(pool):
    @go.op(trainable=True)
    async def fetch(x):
        return x

    async def main():
        with sandbox(pool=pool):
            fetch.code.assign("async def fetch(x):\n    import asyncio, os\n    await asyncio.sleep(0)\n"
                              "    return [x, os.getpid()]\n")
            try:
                return await fetch(5)
            finally:
                fetch.code.assign(fetch._original_source)

    out = asyncio.run(main())
    assert out.value[0] == 5 and out.value[1] in pool.pids()


def test_calls_from_many_threads_share_the_pool(pool):
    where.code.assign("def where(x):\n    import os\n    return [os.getpid(), x * x]\n")
    try:
        with sandbox(pool=pool):
            def work(i):
                with sandbox(pool=pool):  # a context per thread, as a trainer's workers have
                    return where(i).value
            with ThreadPoolExecutor(8) as executor:
                results = list(executor.map(work, range(40)))
    finally:
        where.code.assign(where._original_source)
    assert [v for _, v in results] == [i * i for i in range(40)]
    assert {pid for pid, _ in results} <= set(pool.pids()) and len(pool.pids()) <= 2


def test_no_trace_calls_raise_sandbox_errors(pool):
    where.code.assign("def where(x):\n    return object()\n")
    try:
        with sandbox(pool=pool), go.no_trace(), pytest.raises(CannotCross, match="op 'where': the result is"):
            where(1)
    finally:
        where.code.assign(where._original_source)


def test_writes_land_in_a_fresh_directory_per_call_removed_after(pool):
    source = ("def where(x):\n    import os\n    open('note.txt', 'w').write(str(x))\n"
              "    return [os.getcwd(), sorted(os.listdir('.'))]\n")
    with sandbox(pool=pool):
        first = run_candidate(where, source, 1).value
        second = run_candidate(where, source, 2).value
    assert first[1] == second[1] == ["note.txt"]
    assert first[0] != second[0] and not os.path.exists(first[0])


def test_workers_start_in_a_network_namespace_where_the_system_allows_one():
    with sandbox(workers=1, network_namespace=False) as plain:
        run_candidate(where, "def where(x):\n    return x\n", 1)
        assert plain.network_namespace is False
    with sandbox(workers=1) as isolated:
        run_candidate(where, "def where(x):\n    return x\n", 1)
        prefix = isolated._namespace_prefix()
    if not isolated.network_namespace:
        pytest.skip("unshare --net is not allowed here; the audit hook alone refuses network calls")
    script = "print(sorted(line.split(':')[0].strip() for line in open('/proc/self/net/dev').readlines()[2:]))"
    devices = subprocess.run([*prefix, sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert devices.stdout.strip() == "['lo']"


def test_closing_a_pool_ends_calls_in_flight_with_worker_exited():
    own = SandboxPool(Limits(timeout=30.0), workers=1)
    results = []

    def slow():
        with sandbox(pool=own):
            results.append(run_candidate(where, "def where(x):\n    import time\n    time.sleep(30)\n", 1))

    caller = threading.Thread(target=slow)
    caller.start()
    while not own.pids():
        threading.Event().wait(0.01)
    pid = own.pids()[0]
    threading.Event().wait(0.2)
    own.close()
    caller.join(10)
    assert not caller.is_alive() and not os.path.exists(f"/proc/{pid}")
    assert isinstance(results[0].exception, go.runtime.sandbox.WorkerExited)
    assert str(results[0].exception) == "op 'where': the sandbox pool was closed during the call"


def test_workers_stop_when_the_parent_exits_without_closing_its_pool(tmp_path):
    script = tmp_path / "leave.py"
    script.write_text(
        "import graphopt as go\n"
        "from graphopt.runtime.sandbox import default_pool\n"
        "@go.op(trainable=True)\n"
        "def f(x):\n    return x\n"
        "f.code.assign('def f(x):\\n    return x + 1\\n')\n"
        "assert f(1).value == 2\n"
        "print(default_pool().pids()[0])\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not os.path.exists(f"/proc/{int(done.stdout.strip())}")


def test_folders_left_by_a_dead_parent_are_removed_when_workers_start(tmp_path, monkeypatch):
    from graphopt.runtime.sandbox import pool as pool_module

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f"graphopt-sandbox-{dead}-abc"
    (stale / "call-1").mkdir(parents=True)
    mine = tmp_path / f"graphopt-sandbox-{os.getpid()}-xyz"
    mine.mkdir()
    other = tmp_path / "graphopt-sandbox-notapid"
    other.mkdir()
    pool_module._remove_stale_dirs.cache_clear()
    with sandbox(workers=1) as own:
        run_candidate(where, "def where(x):\n    return x\n", 1)
        assert own.pids()
    assert not stale.exists() and mine.exists() and other.exists()


def test_importing_graphopt_does_not_load_the_pool():
    code = ("import sys, graphopt\n"
            "print(sorted(m for m in ('graphopt.runtime.sandbox.pool', 'graphopt.runtime.sandbox.settings',"
            " 'asyncio') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr
