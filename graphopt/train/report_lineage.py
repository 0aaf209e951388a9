"""The lineage of a pool-keeping optimizer's candidates (``gepa``), read from its state dict, as a table.

An optimizer exposes a lineage when its ``state_dict()["extra"]`` holds ``pool``: a list of
candidates, each ``{"id": int, "parents": [int], "origin": str, "step": int, "scores": [float |
None]}``, with ``origin`` one of ``"seed"``, ``"mutation:<param>"``, ``"merge"`` or ``"current"``
(values set outside the optimizer), and optionally ``frontier``: ``{"<id>": examples led}``.
``lineage_of`` is the one reader of that shape; ``lineage_html`` draws it as an indented tree table.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence

__all__ = ["lineage_of", "lineages_of", "lineage_html"]


def lineage_of(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The candidates of one optimizer state dict, or ``[]`` when it keeps no pool.

    Each entry: ``id``, ``parents``, ``origin`` (as stored), ``kind`` (``seed``, ``mutation``,
    ``merge``, ...), ``param`` (the mutated param, else ``None``), ``step``, ``score`` (mean
    validation score, ``None`` when a score is missing), ``leads`` (examples it leads on the
    Pareto frontier) and ``best`` (the best mean, the earliest among equals).
    """
    extra = state.get("extra")
    pool = extra.get("pool") if isinstance(extra, Mapping) else None
    if not isinstance(pool, list) or not pool:
        return []
    frontier = extra.get("frontier") or {}
    entries = []
    for member in pool:
        origin = str(member.get("origin", ""))
        kind, _, param = origin.partition(":")
        scores = member.get("scores") or []
        finite = [s for s in scores if isinstance(s, (int, float)) and math.isfinite(s)]
        score = sum(finite) / len(finite) if finite and len(finite) == len(scores) else None
        entries.append({"id": int(member["id"]), "parents": [int(p) for p in member.get("parents", [])],
                        "origin": origin, "kind": kind, "param": param or None,
                        "step": member.get("step"), "score": score,
                        "leads": int(frontier.get(str(member["id"]), 0)), "best": False})
    scored = [e for e in entries if e["score"] is not None]
    if scored:
        max(scored, key=lambda e: (e["score"], -e["id"]))["best"] = True
    return entries


def lineages_of(states: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each optimizer state that has a lineage, labelled by optimizer name (and position if the
    name repeats)."""
    names = [str(state.get("optimizer", "optimizer")) for state in states]
    found = {}
    for position, (name, state) in enumerate(zip(names, states)):
        entries = lineage_of(state)
        if entries:
            found[name if names.count(name) == 1 else f"{name} (optimizer {position + 1})"] = entries
    return found


def lineage_html(lineages: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """One table per optimizer: candidates in tree order (each under its first parent, indented by
    depth), with parents, origin, step, mean validation score and frontier share; best marked."""
    parts = []
    for label, entries in lineages.items():
        if len(lineages) > 1:
            parts.append(f"<h3>{_e(label)}</h3>")
        rows = "".join(_row(entry, depth) for entry, depth in _tree_order(entries))
        parts.append('<table class="lineage"><tr><th>candidate</th><th>parents</th><th>origin</th>'
                     "<th>step</th><th>mean validation</th><th>examples led</th></tr>"
                     f"{rows}</table>")
    return "".join(parts)


def _tree_order(entries: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], int]]:
    """Depth-first from the roots, children by id, each candidate once under its first parent."""
    ids = {e["id"] for e in entries}
    children: dict[int | None, list[Mapping[str, Any]]] = {}
    for entry in entries:
        first = next((p for p in entry["parents"] if p in ids and p != entry["id"]), None)
        children.setdefault(first, []).append(entry)
    ordered: list[tuple[Mapping[str, Any], int]] = []
    seen: set[int] = set()
    stack = [(e, 0) for e in sorted(children.get(None, []), key=lambda e: e["id"], reverse=True)]
    while stack:
        entry, depth = stack.pop()
        if entry["id"] in seen:
            continue
        seen.add(entry["id"])
        ordered.append((entry, depth))
        stack.extend((c, depth + 1) for c in sorted(children.get(entry["id"], []), key=lambda e: e["id"],
                                                    reverse=True))
    # A parent cycle in a hand-edited state would hide its members: list them at the end.
    ordered.extend((e, 0) for e in entries if e["id"] not in seen)
    return ordered


def _row(entry: Mapping[str, Any], depth: int) -> str:
    best = ' class="best"' if entry["best"] else ""
    mark = " <strong>★ best</strong>" if entry["best"] else ""
    parents = ", ".join(f"#{p}" for p in entry["parents"]) or "-"
    score = "" if entry["score"] is None else f"{entry['score']:.3f}"
    indent = "&nbsp;&nbsp;&nbsp;&nbsp;" * depth + ("└ " if depth else "")
    return (f'<tr{best}><td class="candidate">{indent}#{_e(entry["id"])}{mark}</td><td>{_e(parents)}</td>'
            f"<td>{_e(_origin(entry))}</td><td>{_e('' if entry['step'] is None else entry['step'])}</td>"
            f"<td>{score}</td><td>{_e(entry['leads'])}</td></tr>")


def _origin(entry: Mapping[str, Any]) -> str:
    if entry["kind"] == "mutation" and entry["param"]:
        return f"mutation of {entry['param']}"
    if entry["kind"] == "merge":
        return "merge of " + " + ".join(f"#{p}" for p in entry["parents"])
    if entry["kind"] == "current":
        return "current values (set outside the optimizer)"
    return entry["origin"]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
