"""A self-contained HTML report of a run: summary, graph, scores, per-step diffs, rejections, usage,
and the lineage of a pool-keeping optimizer's candidates (``gepa``).

No scripts, fonts or images are fetched: the file opens offline in any browser, and every value
is HTML-escaped. ``write_run_report`` draws it from a checkpoint (``graphopt report CKPT``,
``go.optimize(..., report=PATH)``); ``write_report`` from parts (the demo).
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import os
from typing import Any, Mapping, Sequence

import networkx as nx

from graphopt.graph.serialize import atomic_write_bytes
from graphopt.train.checkpoint import Checkpoint
from graphopt.train.history import OptimizerRecord, StepRecord, UsageTotals
from graphopt.train.report_chart import history_svg
from graphopt.train.report_layout import graph_svg
from graphopt.train.report_lineage import lineage_html, lineages_of

MAX_KEPT_CHARS = 20_000  # a changed value larger than this (as JSON) is recorded by description
MAX_DIFF_LINES = 80
MAX_DRAWN_NODES = 400

__all__ = ["graph_data", "graph_from_data", "recorded_changes", "render_report", "write_report",
           "write_run_report", "graph_svg", "history_svg"]


def graph_data(graph: nx.DiGraph) -> dict[str, Any]:
    """A traced graph (``to_networkx``) as JSON data: nodes with their attributes, edges with ``arg``.

    A graph of more than ``MAX_DRAWN_NODES`` nodes is kept as its size only: the checkpoint is
    rewritten every step, and such a drawing would not be read.
    """
    if graph.number_of_nodes() > MAX_DRAWN_NODES:
        return {"nodes": [], "edges": [], "omitted_nodes": graph.number_of_nodes()}
    return {"nodes": [{"id": key, **{k: v for k, v in data.items() if _is_json(v)}}
                      for key, data in graph.nodes(data=True)],
            "edges": [{"source": parent, "target": child, "arg": data.get("arg", "")}
                      for parent, child, data in graph.edges(data=True)]}


def graph_from_data(data: Mapping[str, Any]) -> nx.DiGraph:
    """The ``DiGraph`` ``graph_data`` wrote."""
    graph = nx.DiGraph()
    for node in data.get("nodes", []):
        graph.add_node(node["id"], **{k: v for k, v in node.items() if k != "id"})
    for edge in data.get("edges", []):
        graph.add_edge(edge["source"], edge["target"], arg=edge.get("arg", ""))
    return graph


def recorded_changes(previous: Mapping[str, Any] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """The values that differ from ``previous`` (all of them without one), large ones described."""
    changed = {}
    for name, value in values.items():
        if previous is not None and name in previous and previous[name] == value:
            continue
        text = json.dumps(value, sort_keys=True)
        changed[name] = value if len(text) <= MAX_KEPT_CHARS else \
            f"<value of {len(text)} characters as JSON, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}>"
    return changed


def write_run_report(path: str | os.PathLike[str], saved: Checkpoint, *, title: str = "graphopt run") -> None:
    """Write the report of the run ``saved`` holds, atomically."""
    graph = graph_from_data(saved.graph) if saved.graph is not None else None
    values = saved.best.values if saved.best is not None else saved.params
    summary = checkpoint_summary(saved)
    if saved.graph is not None and saved.graph.get("omitted_nodes"):
        summary["graph"] = f"{saved.graph['omitted_nodes']} nodes, not drawn (over {MAX_DRAWN_NODES})"
    atomic_write_bytes(path, render_report(title=title, graph=graph, history=saved.history,
                                           summary=summary, values=values,
                                           lineages=lineages_of(saved.optimizers)).encode())


def write_report(path: str | os.PathLike[str], *, title: str, graph: nx.DiGraph | None,
                 history: Sequence[StepRecord], summary: Mapping[str, Any], values: Mapping[str, Any],
                 lineages: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> None:
    """Write a report from its parts, atomically (``lineages``: as ``lineages_of`` returns)."""
    atomic_write_bytes(path, render_report(title=title, graph=graph, history=history, summary=summary,
                                           values=values, lineages=lineages).encode("utf-8"))


def checkpoint_summary(saved: Checkpoint) -> dict[str, Any]:
    """The summary table of a checkpoint: status, scores, steps, usage and the configured model."""
    status = saved.finished or ("failed (resumable)" if saved.error else "in progress (resumable)")
    scored = [r.val_score for r in saved.history if r.val_score is not None]
    summary: dict[str, Any] = {"status": status}
    if saved.error:
        summary["error"] = saved.error
    if saved.config and saved.config.get("model"):
        summary["model"] = saved.config["model"]
    summary.update({"steps": saved.position.step,
                    "validation before": _num(scored[0] if scored else None),
                    "best validation": _num(saved.best.score if saved.best else None),
                    "best step": saved.best.step if saved.best else "-",
                    "optimizers": ", ".join(dict.fromkeys(o.name for r in saved.history for o in r.optimizers))
                    or "-"})
    return summary


def render_report(*, title: str, graph: nx.DiGraph | None, history: Sequence[StepRecord],
                  summary: Mapping[str, Any], values: Mapping[str, Any],
                  lineages: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> str:
    """The whole page as text; the lineage section only when some optimizer kept one."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in summary.items())
    drawn = graph_svg(graph) if graph is not None and graph.number_of_nodes() else \
        "<p>No traced run was recorded.</p>"
    shown = "".join(f"<h3>{_e(name)}</h3><pre>{_e(_cut(_text(value), 4000))}</pre>"
                    for name, value in values.items())
    lineage = f"<h2>Lineage</h2>{lineage_html(lineages)}" if lineages else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px;color:#111827}}
table{{border-collapse:collapse;margin-bottom:1em}}th,td{{border:1px solid #d1d5db;padding:4px 8px;
text-align:left;vertical-align:top}}pre{{background:#f3f4f6;padding:8px;white-space:pre-wrap}}
.scroll{{overflow-x:auto}}.add{{background:#dcfce7}}.del{{background:#fee2e2}}.hunk{{color:#6b7280}}
.rejected{{color:#b91c1c}}.lineage .best{{background:#fef9c3}}</style></head><body>
<h1>{_e(title)}</h1><table class="summary">{rows}</table>
<h2>Workflow graph (one traced run)</h2><div class="scroll">{drawn}</div>
<h2>Scores</h2>{history_svg(history)}
<h2>Steps</h2>{_steps_table(history)}
<h2>Parameter changes</h2>{_changes(history)}
<h2>Rejected and refused proposals</h2>{_rejections(history)}{lineage}
<h2>Usage and cost</h2>{_usage(history)}
<h2>Best values</h2>{shown}</body></html>
"""


def _steps_table(history: Sequence[StepRecord]) -> str:
    rows = "".join(
        f"<tr><td>{r.step}</td><td>{r.epoch}</td><td>{_num(r.train_score)}</td><td>{_num(r.val_score)}</td>"
        f"<td>{_num(r.best_score)}</td><td>{_e(', '.join(sorted(r.changes)) if r.step else '-')}</td>"
        f"<td>{_e('; '.join(_outcome(o) for o in r.optimizers))}</td></tr>" for r in history)
    return ("<table class=\"steps\"><tr><th>step</th><th>epoch</th><th>train</th><th>validation</th>"
            f"<th>best</th><th>params changed</th><th>optimizers</th></tr>{rows}</table>")


def _changes(history: Sequence[StepRecord]) -> str:
    """For each step, a diff of every param it changed against the value before the step."""
    current: dict[str, Any] = {}
    parts = []
    for record in history:
        if record.step == 0:
            current.update(record.changes)
            continue
        for name in sorted(record.changes):
            new = record.changes[name]
            parts.append(f'<h3 class="change">step {record.step}: {_e(name)}</h3>'
                         f"{_diff(name, current.get(name), new, record.step)}")
            current[name] = new
    return "".join(parts) or "<p>No step changed a parameter.</p>"


def _diff(name: str, old: Any, new: Any, step: int) -> str:
    """A unified diff of the two values' text (prompts and code as they are, other values as JSON)."""
    before, after = _text(old), _text(new)
    if "\n" not in before + after and len(before) + len(after) < 160:
        return f'<pre><span class="del">- {_e(before)}</span>\n<span class="add">+ {_e(after)}</span></pre>'
    lines = list(difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="",
                                      fromfile=f"{name} before step {step}", tofile=f"{name} after step {step}"))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"… {len(lines) - MAX_DIFF_LINES} more lines"]
    styled = []
    for line in lines:
        kind = "hunk" if line.startswith(("@@", "---", "+++")) else \
            "add" if line.startswith("+") else "del" if line.startswith("-") else ""
        styled.append(f'<span class="{kind}">{_e(line)}</span>' if kind else _e(line))
    return "<pre>" + "\n".join(styled) + "</pre>"


def _rejections(history: Sequence[StepRecord]) -> str:
    rows = []
    for record in history:
        for opt in record.optimizers:
            if opt.rejected is not None:
                rows.append(f'<tr class="rejected"><td>{record.step}</td><td>{_e(opt.name)}</td><td>rejected</td>'
                            f"<td>{_e(', '.join(opt.rejected.params))}</td><td>{_num(opt.rejected.score_before)}"
                            f" → {_num(opt.rejected.score_after)}</td><td>{_e(opt.rejected.reason)}</td></tr>")
            elif opt.refused is not None:
                rows.append(f'<tr class="rejected"><td>{record.step}</td><td>{_e(opt.name)}</td><td>refused'
                            f"</td><td></td><td></td><td>{_e(opt.refused)}</td></tr>")
    if not rows:
        return "<p>Every proposal was kept.</p>"
    return ("<table><tr><th>step</th><th>optimizer</th><th>outcome</th><th>params</th><th>score before → "
            f"after</th><th>why</th></tr>{''.join(rows)}</table>")


def _usage(history: Sequence[StepRecord]) -> str:
    total = sum((r.usage for r in history), UsageTotals())
    rows = "".join(f"<tr><td>{r.step}</td><td>{r.usage.calls}</td><td>{r.usage.cached_calls}</td>"
                   f"<td>{r.usage.tokens}</td><td>{r.usage.cost:.4f}</td><td>{r.usage.evaluations}</td>"
                   f"<td>{r.seconds:.1f}</td></tr>" for r in history)
    seconds = sum(r.seconds for r in history)
    return ("<table class=\"usage\"><tr><th>step</th><th>model calls</th><th>cached calls</th><th>tokens</th>"
            f"<th>cost (USD)</th><th>evaluations</th><th>seconds</th></tr>{rows}<tr><th>total</th>"
            f"<th>{total.calls}</th><th>{total.cached_calls}</th><th>{total.tokens}</th>"
            f"<th>{total.cost:.4f}</th><th>{total.evaluations}</th><th>{seconds:.1f}</th></tr></table>")


def _outcome(record: OptimizerRecord) -> str:
    """What one optimizer did in a step, in a few words."""
    if record.refused is not None:
        return f"{record.name}: refused ({_cut(record.refused, 80)})"
    if record.rejected is not None:
        return (f"{record.name}: rejected {_num(record.rejected.score_after)} < "
                f"{_num(record.rejected.score_before)}")
    gate = f" (gate {_num(record.score_before)} → {_num(record.score_after)})" \
        if record.committed and record.score_after is not None else ""
    return f"{record.name}: {', '.join(record.committed) or 'no change'}{gate}"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True)


def _is_json(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
