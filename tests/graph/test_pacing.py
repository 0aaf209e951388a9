"""GC pacing: a large live graph is not rescanned by every full collection; thresholds come back."""

import gc
import subprocess
import sys
import textwrap

import graphopt as go
from graphopt.graph import pacing


def chain(n):
    node = go.param(0, name="p")
    for _ in range(n):
        node = node + 1
    return node


def test_large_graph_raises_generation_two_threshold_until_it_is_freed():
    gc.collect()
    before = gc.get_threshold()
    out = chain(2 * pacing.PACE_EVERY)
    assert pacing.pacing()
    assert gc.get_threshold()[:2] == before[:2] and gc.get_threshold()[2] > before[2]
    del out
    assert gc.get_threshold() == before


def test_in_a_fresh_process_thresholds_come_back_exactly():
    # Pacing is process-wide: a fresh interpreter starts with no watched node alive.
    script = textwrap.dedent("""
        import gc, threading
        import graphopt as go
        from graphopt.graph import pacing

        def chain(n):
            node = go.param(0, name="p")
            for _ in range(n):
                node = node + 1
            return node

        default = gc.get_threshold()
        first = go.param(0, name="p")
        small = chain(1000)
        assert not pacing.pacing() and gc.get_threshold() == default
        del first, small

        out = chain(3 * pacing.PACE_EVERY)
        raised = gc.get_threshold()[2]
        assert pacing.pacing() and raised > default[2]
        del out
        assert not pacing.pacing() and gc.get_threshold() == default

        out = chain(pacing.PACE_EVERY + 10)
        gc.set_threshold(500, 5, 5)          # the user's choice, made while pacing
        del out
        assert gc.get_threshold() == (500, 5, 5)
        gc.set_threshold(*default)

        outputs, barrier = [], threading.Barrier(3)
        def build():
            barrier.wait()
            outputs.append(chain(pacing.PACE_EVERY))
        threads = [threading.Thread(target=build) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert pacing.pacing()
        outputs.clear()
        assert not pacing.pacing() and gc.get_threshold() == default
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
