"""The score chart of a report: validation, training and best score by step, as inline SVG.

Both axes carry ticks and a title; every step gets a tick, labelled while labels fit (past 25
steps every n-th is labelled), and the score axis gets about five round values.
"""

from __future__ import annotations

import math
from typing import Sequence

from graphopt.train.history import StepRecord

SERIES = (("validation", "val_score", "#2563eb"), ("train minibatch", "train_score", "#9ca3af"),
          ("best", "best_score", "#16a34a"))
MAX_STEP_LABELS = 25


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values covering ``low``..``high``, about ``count`` of them (steps of 1, 2 or 5 × 10^k)."""
    if high - low < 1e-12:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda size: abs(math.log(size / raw)))
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9 or len(ticks) < 2:
        ticks.append(round(value, 12))
        value += step
    return ticks


def history_svg(history: Sequence[StepRecord], *, width: int = 720, height: int = 300) -> str:
    """Scores by step with labelled axes, ticks on both, and a legend."""
    series = [(label, colour, [(r.step, getattr(r, field)) for r in history if getattr(r, field) is not None])
              for label, field, colour in SERIES]
    values = [v for _, _, points in series for _, v in points]
    ticks = nice_ticks(min(values), max(values)) if values else nice_ticks(0.0, 1.0)
    low, high = ticks[0], ticks[-1]
    last = max((r.step for r in history), default=1) or 1
    left, top, plot_w, plot_h = 60, 20, width - 200, height - 75

    def x(step: int) -> float:
        return left + plot_w * step / last

    def y(value: float) -> float:
        return top + plot_h * (1 - (value - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#9ca3af"/>']
    for tick in ticks:
        parts.append(f'<line x1="{left - 5}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" '
                     f'stroke="#e5e7eb"/><text class="ytick" x="{left - 8}" y="{y(tick) + 4:.1f}" '
                     f'text-anchor="end">{tick:g}</text>')
    every = max(1, math.ceil((last + 1) / MAX_STEP_LABELS))
    for step in range(last + 1):
        parts.append(f'<line x1="{x(step):.1f}" y1="{top + plot_h}" x2="{x(step):.1f}" '
                     f'y2="{top + plot_h + 5}" stroke="#6b7280"/>')
        if step % every == 0 or step == last:
            parts.append(f'<text class="xtick" x="{x(step):.1f}" y="{top + plot_h + 18}" '
                         f'text-anchor="middle">{step}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 40}" text-anchor="middle" '
                 f'font-weight="bold">step</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" font-weight="bold" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">score</text>')
    for row, (label, colour, points) in enumerate(series):
        if points:
            path = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            parts.extend(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                         f'<title>{label}, step {s}: {v:.4g}</title></circle>' for s, v in points)
        parts.append(f'<rect x="{left + plot_w + 15}" y="{top + row * 18}" width="12" height="4" '
                     f'fill="{colour}"/><text x="{left + plot_w + 32}" y="{top + row * 18 + 6}">{label}</text>')
    parts.append("</svg>")
    return "".join(parts)
