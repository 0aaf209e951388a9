"""Studies in a database or journal file, shared by optimizers and by processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import optuna

import graphopt as go

WORKER = textwrap.dedent("""
    import sys
    import graphopt as go

    storage, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    k = go.param(5, name="k", space=go.Int(0, 20))

    @go.op
    def workflow(k):
        return k

    opt = go.optimizer("optuna", [k], storage=storage, study_name="shared", seed=seed)
    for _ in range(steps):
        go.backward(workflow(k), go.Feedback(score=-abs(k.value - 12)))
        opt.step()
        opt.zero_feedback()
""")


def make_param():
    return go.param(5, name="k", space=go.Int(0, 20))


@go.op
def workflow(k):
    return k


def run_steps(opt, k, steps):
    for _ in range(steps):
        go.backward(workflow(k), go.Feedback(score=-abs(k.value - 12)))
        opt.step()
        opt.zero_feedback()


def test_two_processes_share_one_journal_study(tmp_path):
    journal = tmp_path / "study.log"
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(journal), "6", str(seed)],
                                stderr=subprocess.PIPE, text=True) for seed in (1, 2)]
    for worker in workers:
        _, errors = worker.communicate(timeout=120)
        assert worker.returncode == 0, errors
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(finished) == 12
    assert sorted(t.number for t in trials) == list(range(len(trials)))


def test_optimizers_with_one_sqlite_url_share_trials(plugin_manager, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first_k, second_k = make_param(), make_param()
    first = go.optimizer("optuna", [first_k], storage=url, study_name="s", plugin_manager=plugin_manager)
    second = go.optimizer("optuna", [second_k], storage=url, study_name="s", seed=1,
                          plugin_manager=plugin_manager)
    run_steps(first, first_k, 3)
    run_steps(second, second_k, 3)
    assert len(second.study.trials) == 8  # 3 + 3 finished, one open per optimizer
    assert {t.number for t in first.study.trials} == set(range(8))


def test_a_persistent_study_is_named_not_copied_by_state_dict(plugin_manager, tmp_path):
    journal = tmp_path / "study.log"
    k = make_param()
    opt = go.optimizer("optuna", [k], storage=journal, plugin_manager=plugin_manager)
    run_steps(opt, k, 3)
    state = json.loads(json.dumps(opt.state_dict()))
    assert state["extra"]["trials"] is None and state["extra"]["config"]["storage"] == str(journal)

    resumed_k = go.param(k.value, name="k", space=go.Int(0, 20))
    resumed = go.optimizer("optuna", [resumed_k], storage=journal, plugin_manager=plugin_manager)
    resumed.load_state_dict(state)
    run_steps(resumed, resumed_k, 1)
    trials = resumed.study.trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4 + ["RUNNING"]
    assert trials[3].params == {"k": k.value}  # the open trial was finished by the resumed optimizer


def test_a_study_with_other_directions_is_refused(plugin_manager, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    go.optimizer("optuna", [make_param()], storage=url, plugin_manager=plugin_manager)
    try:
        go.optimizer("optuna", [make_param()], storage=url, objectives={"loss": "minimize"},
                     plugin_manager=plugin_manager)
    except ValueError as err:
        assert "optimizes ['maximize']" in str(err)
    else:
        raise AssertionError("a study optimized the other way round was accepted")
