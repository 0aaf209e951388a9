"""A layered (Sugiyama-style) drawing of a traced graph: boxes in columns, edges that never cross a box.

Columns are longest-path depths, so every edge runs left to right. An edge that skips columns
passes through a reserved slot (a dummy node) in each column it crosses, so it never runs under
another node's box; rows inside a column are ordered by the barycentre of their neighbours,
sweeping both ways, which keeps crossings few. Output is SVG text: edges first, then boxes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Hashable

import networkx as nx

COLOURS = {"param": "#fde68a", "message": "#bfdbfe", "error": "#fecaca", "node": "#e5e7eb"}


@dataclass(frozen=True)
class Box:
    """One node's rectangle."""

    key: Hashable
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Layout:
    """Where every node's box lies and the polyline of every edge (parent → child)."""

    boxes: dict[Hashable, Box]
    edges: dict[tuple[Hashable, Hashable], list[tuple[float, float]]]
    width: float
    height: float


def layered_layout(graph: nx.DiGraph, *, width: float = 180, height: float = 46, column_gap: float = 60,
                   row_gap: float = 22, margin: float = 20, sweeps: int = 6) -> Layout:
    """Place ``graph`` (a DAG) in columns by depth; route edges through dummy slots."""
    depth: dict[Hashable, int] = {}
    for key in nx.topological_sort(graph):
        depth[key] = max((depth[p] + 1 for p in graph.predecessors(key)), default=0)
    columns: list[list[Hashable]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for key in depth:
        columns[depth[key]].append(key)
    # Edges spanning several columns become chains through dummy slots, one per crossed column.
    chains: dict[tuple[Hashable, Hashable], list[Hashable]] = {}
    up: dict[Hashable, list[Hashable]] = {key: [] for key in depth}
    down: dict[Hashable, list[Hashable]] = {key: [] for key in depth}
    for parent, child in graph.edges():
        chain: list[Hashable] = [parent]
        for level in range(depth[parent] + 1, depth[child]):
            dummy = ("dummy", parent, child, level)
            columns[level].append(dummy)
            up[dummy], down[dummy] = [], []
            chain.append(dummy)
        chain.append(child)
        for source, target in zip(chain, chain[1:]):
            down[source].append(target)
            up[target].append(source)
        chains[(parent, child)] = chain
    _order(columns, up, down, sweeps)
    slot = {key: (level, row) for level, keys in enumerate(columns) for row, key in enumerate(keys)}

    def corner(key: Hashable) -> tuple[float, float]:
        level, row = slot[key]
        return margin + level * (width + column_gap), margin + row * (height + row_gap)

    boxes = {key: Box(key, *corner(key), width, height) for key in depth}
    edges: dict[tuple[Hashable, Hashable], list[tuple[float, float]]] = {}
    for pair, chain in chains.items():
        x, y = corner(chain[0])
        points = [(x + width, y + height / 2)]
        for dummy in chain[1:-1]:
            x, y = corner(dummy)
            points += [(x, y + height / 2), (x + width, y + height / 2)]
        x, y = corner(chain[-1])
        points.append((x, y + height / 2))
        edges[pair] = points
    rows = max((len(keys) for keys in columns), default=1)
    return Layout(boxes, edges, 2 * margin + len(columns) * (width + column_gap) - column_gap,
                  2 * margin + rows * (height + row_gap) - row_gap)


def _order(columns: list[list[Hashable]], up: dict[Hashable, list[Hashable]],
           down: dict[Hashable, list[Hashable]], sweeps: int) -> None:
    """Reorder each column by the mean row of its neighbours in the previous column (both ways)."""
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        levels = range(1, len(columns)) if forward else range(len(columns) - 2, -1, -1)
        for level in levels:
            previous = columns[level - 1] if forward else columns[level + 1]
            where = {key: row for row, key in enumerate(previous)}
            links = up if forward else down

            def centre(item: tuple[int, Hashable]) -> float:
                row, key = item
                near = [where[n] for n in links[key] if n in where]
                return sum(near) / len(near) if near else float(row)

            columns[level] = [key for _, key in sorted(enumerate(columns[level]), key=centre)]


def graph_svg(graph: nx.DiGraph) -> str:
    """The graph as inline SVG: edges drawn first, then the boxes over them; all text escaped."""
    layout = layered_layout(graph)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{layout.width:.0f}" '
             f'height="{layout.height:.0f}" font-family="sans-serif" font-size="11">',
             '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="8" refY="4" '
             'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#6b7280"/></marker></defs>']
    for (parent, child), points in layout.edges.items():
        arg = graph.edges[parent, child].get("arg") or ""
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline class="edge" points="{path}" fill="none" stroke="#6b7280" '
                     f'marker-end="url(#arrow)"><title>{html.escape(str(arg))}</title></polyline>')
    for key, box in layout.boxes.items():
        data: dict[str, Any] = graph.nodes[key]
        fill = COLOURS.get(data.get("kind", "node"), COLOURS["node"])
        name = str(data.get("name", key))
        value = str(data.get("value", ""))
        parts.append(f'<g class="node"><title>{html.escape(name)} = {html.escape(value)}</title>'
                     f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.width:.0f}" '
                     f'height="{box.height:.0f}" rx="6" fill="{fill}" stroke="#374151"/>'
                     f'<text x="{box.x + 8:.1f}" y="{box.y + 18:.1f}" font-weight="bold">'
                     f'{html.escape(_cut(name, 28))}</text><text x="{box.x + 8:.1f}" y="{box.y + 34:.1f}" '
                     f'fill="#374151">{html.escape(_cut(value, 30))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
