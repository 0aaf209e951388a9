"""A self-contained HTML report of a run: the workflow's graph and the score history, as inline SVG.

No scripts, fonts or images are fetched: the file opens offline in any browser.
"""

from __future__ import annotations

import html
import os
from typing import Any, Sequence

import networkx as nx

from graphopt.graph.serialize import atomic_write_bytes
from graphopt.train.history import OptimizerRecord, StepRecord

_COLOURS = {"param": "#fde68a", "message": "#bfdbfe", "error": "#fecaca", "node": "#e5e7eb"}


def graph_svg(graph: nx.DiGraph, *, width: int = 180, height: int = 46, gap: int = 50) -> str:
    """The graph drawn left to right, one column per longest-path depth."""
    depth: dict[Any, int] = {}
    for key in nx.topological_sort(graph):
        depth[key] = max((depth[p] + 1 for p in graph.predecessors(key)), default=0)
    columns: dict[int, list[Any]] = {}
    for key, level in depth.items():
        columns.setdefault(level, []).append(key)
    place = {key: (20 + level * (width + gap), 20 + row * (height + 20))
             for level, keys in columns.items() for row, key in enumerate(keys)}
    total_w = 40 + len(columns) * (width + gap)
    total_h = 40 + max(len(k) for k in columns.values()) * (height + 20) if columns else 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{total_h}" '
             f'font-family="sans-serif" font-size="11">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#6b7280"/></marker></defs>']
    for parent, child in graph.edges():
        (x1, y1), (x2, y2) = place[parent], place[child]
        parts.append(f'<line x1="{x1 + width}" y1="{y1 + height / 2}" x2="{x2}" y2="{y2 + height / 2}" '
                     f'stroke="#6b7280" marker-end="url(#arrow)"/>')
    for key, data in graph.nodes(data=True):
        x, y = place[key]
        fill = _COLOURS.get(data.get("kind", "node"), "#e5e7eb")
        name = html.escape(_cut(str(data.get("name", key)), 28))
        value = html.escape(_cut(str(data.get("value", "")), 30))
        parts.append(f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="6" fill="{fill}" '
                     f'stroke="#374151"/><text x="{x + 8}" y="{y + 18}" font-weight="bold">{name}</text>'
                     f'<text x="{x + 8}" y="{y + 34}" fill="#374151">{value}</text>')
    parts.append("</svg>")
    return "".join(parts)


def history_svg(history: Sequence[StepRecord], *, width: int = 640, height: int = 260) -> str:
    """Validation, training and best scores by step."""
    series = {"validation": [(r.step, r.val_score) for r in history if r.val_score is not None],
              "train minibatch": [(r.step, r.train_score) for r in history if r.train_score is not None],
              "best": [(r.step, r.best_score) for r in history if r.best_score is not None]}
    values = [v for points in series.values() for _, v in points]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    last = max((r.step for r in history), default=1) or 1
    left, top, plot_w, plot_h = 50, 20, width - 170, height - 60

    def point(step: int, value: float) -> str:
        return f"{left + plot_w * step / last:.1f},{top + plot_h * (1 - (value - low) / (high - low)):.1f}"

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9ca3af"/>',
             f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{high:.2f}</text>',
             f'<text x="{left - 6}" y="{top + plot_h + 4}" text-anchor="end">{low:.2f}</text>',
             f'<text x="{left}" y="{top + plot_h + 18}">step 0</text>',
             f'<text x="{left + plot_w}" y="{top + plot_h + 18}" text-anchor="end">step {last}</text>']
    colours = {"validation": "#2563eb", "train minibatch": "#9ca3af", "best": "#16a34a"}
    for row, (label, points) in enumerate(series.items()):
        if points:
            path = " ".join(point(s, v) for s, v in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colours[label]}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{point(s, v).split(",")[0]}" cy="{point(s, v).split(",")[1]}" '
                         f'r="3" fill="{colours[label]}"/>' for s, v in points)
        parts.append(f'<rect x="{left + plot_w + 15}" y="{top + row * 18}" width="12" height="4" '
                     f'fill="{colours[label]}"/><text x="{left + plot_w + 32}" y="{top + row * 18 + 6}">'
                     f'{label}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_report(path: str | os.PathLike[str], *, title: str, graph: nx.DiGraph,
                 history: Sequence[StepRecord], summary: dict[str, Any], values: dict[str, Any]) -> None:
    """Write the report atomically: summary table, graph, score history, final values."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in summary.items())
    shown = "".join(f"<h3>{html.escape(name)}</h3><pre>{html.escape(_cut(str(value), 2000))}</pre>"
                    for name, value in values.items())
    steps = "".join(
        f"<tr><td>{r.step}</td><td>{_num(r.train_score)}</td><td>{_num(r.val_score)}</td>"
        f"<td>{_num(r.best_score)}</td><td>{r.usage.calls}</td><td>{r.usage.tokens}</td>"
        f"<td>{r.usage.evaluations}</td>"
        f"<td>{html.escape('; '.join(_outcome(o) for o in r.optimizers))}</td></tr>"
        for r in history)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
th,td{{border:1px solid #d1d5db;padding:4px 8px;text-align:left}}pre{{background:#f3f4f6;padding:8px;
white-space:pre-wrap}}.scroll{{overflow-x:auto}}</style></head><body>
<h1>{html.escape(title)}</h1><table>{rows}</table>
<h2>Workflow graph (one traced run)</h2><div class="scroll">{graph_svg(graph)}</div>
<h2>Scores</h2>{history_svg(history)}
<h2>Steps</h2><table><tr><th>step</th><th>train</th><th>validation</th><th>best</th><th>calls</th>
<th>tokens</th><th>evaluations</th><th>optimizers</th></tr>{steps}</table>
<h2>Best values</h2>{shown}</body></html>
"""
    atomic_write_bytes(path, page.encode("utf-8"))


def _outcome(record: OptimizerRecord) -> str:
    """What one optimizer did in a step, in a few words."""
    if record.refused is not None:
        return f"{record.name}: refused ({_cut(record.refused, 80)})"
    if record.rejected is not None:
        return (f"{record.name}: rejected {_num(record.rejected.score_after)} < "
                f"{_num(record.rejected.score_before)}")
    return f"{record.name}: {', '.join(record.committed) or 'no change'}"


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split()) if limit < 100 else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"
