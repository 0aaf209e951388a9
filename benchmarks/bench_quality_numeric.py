"""Search quality at an equal number of objective calls, on standard black-box test functions.

Every method spends the same budget of *objective calls*, counted by the objective itself (not by
the optimizer): raw Optuna TPE, graphopt's ``optuna`` (TPE) through ``opt.step(closure)`` and
through ``go.optimize`` (one example, batch_size=1, eval_every=1: the metric is the objective),
``random``, ``spsa`` and ``evolution``. The figure is the regret (best value found minus the known
minimum) after 50 and 150 calls, median and IQR over seeds; each graphopt run starts from values
drawn at random per seed (as raw TPE's first trial is). Also reported: seconds per call against
raw TPE on the same function (CPU time, median of per-seed ratios; and for ``opt.step`` against
raw TPE making the very same suggestions: its first trial enqueued at graphopt's starting point),
distinct points per call, and a Mann–Whitney U test of graphopt+TPE against raw TPE (two-sided;
p >= 0.05 means no significant difference).

    python benchmarks/bench_quality_numeric.py                 # full table: 10 seeds
    python benchmarks/bench_quality_numeric.py --seeds 3 --functions branin --budget 50
    python benchmarks/bench_quality_numeric.py --out benchmarks/results/quality_numeric.md
    make bench                                                 # the pytest-benchmark cases below
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import optuna
import pytest

import graphopt as go

BUDGETS = (50, 150)
METHODS = ("raw-tpe", "go-tpe-step", "go-tpe-optimize", "random", "spsa", "evolution")
TPE_PATHS = ("go-tpe-step", "go-tpe-optimize")


# -- test functions ---------------------------------------------------------------------------
class Problem:
    """A function to minimize over named spaces, with its known minimum."""

    def __init__(self, name: str, spaces: dict[str, Any], function: Callable[[dict[str, Any]], float],
                 minimum: float) -> None:
        self.name = name
        self.spaces = spaces
        self.function = function
        self.minimum = minimum


def branin(v: dict[str, Any]) -> float:
    x1, x2 = v["x1"], v["x2"]
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H6_A = ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14),
         (3, 3.5, 1.7, 10, 17, 8), (17, 8, 0.05, 10, 0.1, 14))
_H6_P = ((1312, 1696, 5569, 124, 8283, 5886), (2329, 4135, 8307, 3736, 1004, 9991),
         (2348, 1451, 3522, 2883, 3047, 6650), (4047, 8828, 8732, 5743, 1091, 381))


def hartmann6(v: dict[str, Any]) -> float:
    x = [v[f"x{i}"] for i in range(6)]
    total = 0.0
    for alpha, a, p in zip(_H6_ALPHA, _H6_A, _H6_P):
        total += alpha * math.exp(-sum(a[j] * (x[j] - p[j] * 1e-4) ** 2 for j in range(6)))
    return -total


def rosenbrock(v: dict[str, Any]) -> float:
    x = [v[f"x{i}"] for i in range(4)]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(3))


_QUAD_CENTER = {"a": 62.0, "b": -0.35, "c": 310.0}
_QUAD_RANGE = {"a": 100.0, "b": 2.0, "c": 2000.0}
_QUAD_WEIGHT = {"a": 1e5, "b": 6e4, "c": 3e4}


def quadratic(v: dict[str, Any]) -> float:
    """An ill-scaled bowl: bounds from 2 to 2,000 wide, values up to about 1e5."""
    return sum(_QUAD_WEIGHT[k] * ((v[k] - _QUAD_CENTER[k]) / _QUAD_RANGE[k]) ** 2 for k in _QUAD_CENTER)


_OPTIMIZERS_PENALTY = {"adam": 0.0, "sgd": 0.6, "rmsprop": 0.3, "adagrad": 1.2}


def mixed(v: dict[str, Any]) -> float:
    """A made-up tuning surface: log-scale learning rate, integer width, float, categorical."""
    lr, width, dropout, kind = v["lr"], v["width"], v["dropout"], v["optimizer"]
    best_lr = 3e-3 if kind == "adam" else 3e-2
    value = (math.log10(lr) - math.log10(best_lr)) ** 2 + ((width - 13) / 4) ** 2
    value += 4 * (dropout - 0.2) ** 2 + _OPTIMIZERS_PENALTY[kind]
    return value + (0.5 if kind == "sgd" and width > 16 else 0.0)


def problems() -> dict[str, Problem]:
    unit6 = {f"x{i}": go.Float(0.0, 1.0) for i in range(6)}
    return {
        "branin": Problem("branin", {"x1": go.Float(-5.0, 10.0), "x2": go.Float(0.0, 15.0)},
                          branin, 0.397887357729738),
        "hartmann6": Problem("hartmann6", unit6, hartmann6, -3.322368011391339),
        "rosenbrock4": Problem("rosenbrock4", {f"x{i}": go.Float(-2.048, 2.048) for i in range(4)},
                               rosenbrock, 0.0),
        "quadratic": Problem("quadratic", {"a": go.Float(0.0, 100.0), "b": go.Float(-1.0, 1.0),
                                           "c": go.Float(-1000.0, 1000.0)}, quadratic, 0.0),
        "mixed": Problem("mixed", {"lr": go.Float(1e-5, 1.0, log=True), "width": go.Int(1, 32),
                                   "dropout": go.Float(0.0, 0.8),
                                   "optimizer": go.Choice(list(_OPTIMIZERS_PENALTY))},
                         mixed, 0.0),
    }


# -- counting objective calls -----------------------------------------------------------------
class Calls:
    """The objective's own record of every call: values, result, time."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.values: list[float] = []
        self.points: set[str] = set()

    def __call__(self, values: dict[str, Any]) -> float:
        result = self.problem.function(values)
        self.values.append(result)
        self.points.add(json.dumps(values, sort_keys=True))
        return result

    @property
    def count(self) -> int:
        return len(self.values)

    def regret_at(self, budget: int) -> float:
        return min(self.values[:budget]) - self.problem.minimum


class Result:
    """One run: the regret at each budget, calls, distinct points, seconds per call."""

    def __init__(self, calls: Calls, seconds: float, budget: int) -> None:
        used = calls.values[:budget]
        self.regret = {b: calls.regret_at(b) for b in BUDGETS if b <= budget}
        self.calls = len(calls.values)
        self.distinct = len(calls.points)
        self.seconds_per_call = seconds / max(1, len(used))


def make_params(problem: Problem, seed: int) -> dict[str, go.Param]:
    rng = random.Random(10_000 + seed)
    return {name: go.param(space.sample(rng), name=name, space=space)
            for name, space in problem.spaces.items()}


def current(params: dict[str, go.Param]) -> dict[str, Any]:
    return {name: p.value for name, p in params.items()}


# -- the methods ------------------------------------------------------------------------------
def optuna_distributions(problem: Problem) -> dict[str, Any]:
    distributions: dict[str, Any] = {}
    for name, space in problem.spaces.items():
        if isinstance(space, go.Choice):
            distributions[name] = optuna.distributions.CategoricalDistribution(space.options)
        elif isinstance(space, go.Int):
            distributions[name] = optuna.distributions.IntDistribution(space.low, space.high, log=space.log)
        else:
            distributions[name] = optuna.distributions.FloatDistribution(space.low, space.high, log=space.log)
    return distributions


def run_raw_tpe(problem: Problem, seed: int, budget: int, calls: Calls) -> None:
    distributions = optuna_distributions(problem)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    while calls.count < budget:
        trial = study.ask(distributions)
        study.tell(trial, calls(trial.params))


def paired_overhead(problem: Problem, seeds: range, budget: int) -> float:
    """CPU seconds of ``opt.step(closure)`` over raw TPE making the very same suggestions (its
    first trial enqueued at graphopt's starting point): whole runs in the order raw, graphopt,
    graphopt, raw, so warm-up and a busy machine weigh on both alike; median over seeds."""
    ratios = []
    distributions = optuna_distributions(problem)
    for seed in seeds:
        start = {name: p.value for name, p in make_params(problem, seed).items()}
        spent = {"raw": 0.0, "go": 0.0}
        seen: dict[str, list[float]] = {}
        for label in ("raw", "go", "go", "raw"):
            calls = Calls(problem)
            started = time.thread_time()
            if label == "raw":
                study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
                study.enqueue_trial(start)
                while calls.count < budget:
                    trial = study.ask(distributions)
                    study.tell(trial, calls(trial.params))
            else:
                run_go_step("go-tpe-step", problem, seed, budget, calls)
            spent[label] += time.thread_time() - started
            seen.setdefault(label, calls.values)
        if seen["raw"] != seen["go"]:
            raise AssertionError(f"{problem.name} seed {seed}: graphopt and raw TPE diverged")
        ratios.append(spent["go"] / spent["raw"])
    return statistics.median(ratios)


def graphopt_share(problem: Problem, seeds: range, budget: int) -> float:
    """Time ``opt.step(closure)`` spends outside Optuna's ask and tell and the objective, over
    the time in ask and tell: graphopt's own cost per trial, measured within each run."""
    shares = []
    for seed in seeds:
        params = make_params(problem, seed)
        listed = list(params.values())
        opt = go.optimizer("optuna", listed, objectives={"value": "minimize"}, seed=seed)
        inside = {"optuna": 0.0, "objective": 0.0}
        study_ask, study_tell = opt.study.ask, opt.study.tell

        def timed(function: Callable[..., Any], part: str) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                started = time.thread_time()
                try:
                    return function(*args, **kwargs)
                finally:
                    inside[part] += time.thread_time() - started
            return call

        opt.study.ask, opt.study.tell = timed(study_ask, "optuna"), timed(study_tell, "optuna")
        objective = timed(lambda: problem.function(current(params)), "objective")
        started = time.thread_time()
        for _ in range(budget):
            opt.step(objective)
        total = time.thread_time() - started
        shares.append((total - inside["optuna"] - inside["objective"]) / inside["optuna"])
    return statistics.median(shares)


def run_go_step(method: str, problem: Problem, seed: int, budget: int, calls: Calls) -> None:
    params = make_params(problem, seed)
    listed = list(params.values())
    if method == "go-tpe-step":
        opt = go.optimizer("optuna", listed, objectives={"value": "minimize"}, seed=seed)
    elif method == "spsa":
        opt = go.optimizer("spsa", listed, seed=seed)
    elif method == "evolution":
        opt = go.optimizer("evolution", listed, seed=seed)
    elif method == "random":
        opt = go.optimizer("random", listed, seed=seed)
    else:
        raise ValueError(method)
    def closure() -> float:  # the objective itself, as a user's step(closure) would run it
        return calls(current(params))

    while calls.count < budget:
        opt.step(closure)
        opt.zero_feedback()


def run_go_optimize(problem: Problem, seed: int, budget: int, calls: Calls) -> None:
    params = make_params(problem, seed)
    listed = list(params.values())
    opt = go.optimizer("optuna", listed, seed=seed)
    evaluate = go.op(lambda *values: calls(current(params)))

    def workflow(example: Any) -> Any:
        return evaluate(*listed)

    options: dict[str, Any] = {"epochs": budget, "batch_size": 1, "eval_every": 1, "quiet": True}
    if "max_evaluations" in inspect.signature(go.train.Trainer).parameters:
        options["max_evaluations"] = budget
    go.optimize(workflow, [{"input": 0, "target": None}],
                metric=lambda example, value: go.Feedback(score=-value), optimizers=opt, **options)


def supports(method: str, problem: Problem) -> bool:
    """spsa steps numbers only: it sits out spaces with a choice."""
    return method != "spsa" or not any(isinstance(s, go.Choice) for s in problem.spaces.values())


def run(method: str, problem: Problem, seed: int, budget: int) -> Result:
    calls = Calls(problem)
    # CPU time of this process: on a shared machine wall time measures the neighbours.
    started = time.thread_time()
    if method == "raw-tpe":
        run_raw_tpe(problem, seed, budget, calls)
    elif method == "go-tpe-optimize":
        run_go_optimize(problem, seed, budget, calls)
    else:
        run_go_step(method, problem, seed, budget, calls)
    seconds = time.thread_time() - started
    if calls.count > budget:  # a step may overshoot; time the calls within the budget only
        seconds *= budget / calls.count
    return Result(calls, seconds, budget)


# -- statistics and the table -----------------------------------------------------------------
def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def mann_whitney(a: list[float], b: list[float]) -> float:
    from scipy.stats import mannwhitneyu  # scipy comes with graphopt-optuna
    if a == b:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


def evaluate_all(functions: list[str], methods: list[str], seeds: range, budget: int,
                 progress: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Run every (function, method, seed); return the figures as JSON data."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    catalog = problems()
    figures: dict[str, Any] = {"seeds": len(seeds), "budgets": [b for b in BUDGETS if b <= budget],
                               "functions": {}}
    for function in functions:
        problem = catalog[function]
        usable = [m for m in methods if supports(m, problem)]
        results: dict[str, list[Result]] = {method: [] for method in usable}
        spent = {method: 0.0 for method in usable}
        for seed in seeds:  # methods interleaved, so load on the machine hits them alike
            for method in usable:
                started = time.perf_counter()
                results[method].append(run(method, problem, seed, budget))
                spent[method] += time.perf_counter() - started
        progress(f"{function}: " + ", ".join(f"{m} {t:.1f} s" for m, t in spent.items()))
        rows: dict[str, Any] = {}
        for method, runs in results.items():
            row: dict[str, Any] = {}
            for b in figures["budgets"]:
                regrets = [r.regret[b] for r in runs]
                q1, median, q3 = quartiles(regrets)
                row[f"regret@{b}"] = {"median": median, "q1": q1, "q3": q3, "all": regrets}
                if method in TPE_PATHS and "raw-tpe" in results:
                    row[f"p@{b}"] = mann_whitney(regrets, [r.regret[b] for r in results["raw-tpe"]])
            row["ms_per_call"] = statistics.median(r.seconds_per_call for r in runs) * 1e3
            row["overhead_vs_raw"] = statistics.median(
                r.seconds_per_call / raw.seconds_per_call for r, raw in zip(runs, results["raw-tpe"])) \
                if "raw-tpe" in results else None
            row["distinct_per_call"] = statistics.mean(r.distinct / r.calls for r in runs)
            if method == "go-tpe-step":
                row["overhead_same_suggestions"] = paired_overhead(problem, seeds, budget)
                row["graphopt_share"] = graphopt_share(problem, seeds, budget)
            rows[method] = row
        figures["functions"][function] = rows
    return figures


def table(figures: dict[str, Any]) -> str:
    budgets = figures["budgets"]
    header = ["function", "method"] + [f"regret@{b} median [IQR]" for b in budgets] \
        + [f"p@{b} vs raw" for b in budgets] + ["ms/call", "× raw", "× raw, same suggestions",
                                                "graphopt's own share", "distinct/calls"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for function, rows in figures["functions"].items():
        for method, row in rows.items():
            cells = [function, method]
            for b in budgets:
                r = row[f"regret@{b}"]
                cells.append(f"{r['median']:.3g} [{r['q1']:.3g}, {r['q3']:.3g}]")
            cells += [f"{row[f'p@{b}']:.2f}" if f"p@{b}" in row else "" for b in budgets]
            overhead = row["overhead_vs_raw"]
            same, share = row.get("overhead_same_suggestions"), row.get("graphopt_share")
            cells += [f"{row['ms_per_call']:.2f}", f"{overhead:.2f}" if overhead else "",
                      f"{same:.3f}" if same else "", f"{share:.1%}" if share is not None else "",
                      f"{row['distinct_per_call']:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- pytest-benchmark cases (make bench) ------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_branin_at_50_calls(benchmark, method):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    problem = problems()["branin"]
    result = benchmark.pedantic(run, args=(method, problem, 0, 50), rounds=1, iterations=1)
    benchmark.extra_info.update({"regret@50": result.regret[50], "calls": result.calls,
                                 "distinct_points": result.distinct})
    assert result.calls >= 50 and math.isfinite(result.regret[50])


def test_graphopt_tpe_matches_raw_tpe(benchmark):
    """Ten seeds on Branin at 50 calls: graphopt+TPE is not significantly worse than raw TPE."""
    figures = benchmark.pedantic(evaluate_all, args=(["branin"], ["raw-tpe", *TPE_PATHS], range(10), 50),
                                 rounds=1, iterations=1)
    rows = figures["functions"]["branin"]
    for path in TPE_PATHS:
        benchmark.extra_info[f"{path} p@50"] = rows[path]["p@50"]
        benchmark.extra_info[f"{path} × raw"] = rows[path]["overhead_vs_raw"]
    assert rows["go-tpe-step"]["p@50"] >= 0.05


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=max(BUDGETS))
    parser.add_argument("--functions", default=",".join(problems()))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--out", type=Path, help="write the table (.md) and figures (.json) here")
    args = parser.parse_args(argv)
    functions = args.functions.split(",")
    methods = args.methods.split(",")
    if "raw-tpe" not in methods:
        methods.insert(0, "raw-tpe")
    figures = evaluate_all(functions, methods, range(args.seeds), args.budget,
                           progress=lambda line: print(line, file=sys.stderr, flush=True))
    text = table(figures)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
