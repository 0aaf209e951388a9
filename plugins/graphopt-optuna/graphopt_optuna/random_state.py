"""The random generators inside an Optuna sampler, saved as JSON data and put back.

A sampler is built once and kept, as raw Optuna keeps it; what makes its next suggestion differ
from a fresh sampler's is its numpy generators (``RandomState`` or ``Generator``), held directly
or through Optuna's lazy wrappers and inner samplers. They are found by walking the sampler's
attributes (Optuna and graphopt-optuna objects only) and named by their attribute path, so the
same sampler class with the same options finds the same paths.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

import numpy as np

_OWN_MODULES = ("optuna", "graphopt_optuna")
_MAX_DEPTH = 6


def random_states(sampler: Any) -> dict[str, Any]:
    """Each generator's state by attribute path (``"_random_sampler._rng._rng"``), as JSON data."""
    return {path: _state_to_json(rng) for path, rng in _generators(sampler)}


def check_random_states(sampler: Any, states: Mapping[str, Any]) -> None:
    """``ValueError`` unless ``sampler`` holds a generator at each path of ``states``."""
    found = dict(_generators(sampler))
    missing = sorted(set(states) - set(found))
    if missing:
        raise ValueError(f"sampler {type(sampler).__name__} has no random generator at {missing}; "
                         f"it holds {sorted(found)}")


def set_random_states(sampler: Any, states: Mapping[str, Any]) -> None:
    """Put back the states ``random_states`` wrote (paths checked by ``check_random_states``)."""
    check_random_states(sampler, states)
    found = dict(_generators(sampler))
    for path, data in states.items():
        _set_state(found[path], data)


def _generators(root: Any) -> Iterator[tuple[str, Any]]:
    """(path, generator) pairs, each generator once (samplers share one between parts)."""
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("", root, 0)]
    while stack:
        path, item, depth = stack.pop()
        if id(item) in seen or depth > _MAX_DEPTH:
            continue
        seen.add(id(item))
        if isinstance(item, (np.random.RandomState, np.random.Generator)):
            yield path, item
            continue
        children: list[tuple[str, Any]] = []
        if isinstance(item, Mapping):
            children = [(str(k), v) for k, v in item.items()]
        elif isinstance(item, (list, tuple)):
            children = [(str(i), v) for i, v in enumerate(item)]
        elif type(item).__module__.split(".")[0] in _OWN_MODULES:
            children = list(_attributes(item).items())
        for name, child in sorted(children, key=lambda pair: pair[0], reverse=True):
            stack.append((f"{path}.{name}" if path else name, child, depth + 1))


def _attributes(item: Any) -> dict[str, Any]:
    found = dict(getattr(item, "__dict__", {}))
    for cls in type(item).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if slot not in found and hasattr(item, slot):
                found[slot] = getattr(item, slot)
    return found


def _state_to_json(rng: Any) -> dict[str, Any]:
    if isinstance(rng, np.random.RandomState):
        state = rng.get_state(legacy=False)
        return {"bit_generator": state["bit_generator"],
                "state": {"key": state["state"]["key"].tolist(), "pos": int(state["state"]["pos"])},
                "has_gauss": int(state["has_gauss"]), "gauss": float(state["gauss"])}
    return _plain(rng.bit_generator.state)


def _set_state(rng: Any, data: Mapping[str, Any]) -> None:
    if isinstance(rng, np.random.RandomState):
        state = dict(data)
        state["state"] = {"key": np.asarray(data["state"]["key"], dtype=np.uint32),
                          "pos": int(data["state"]["pos"])}
        rng.set_state(state)
    else:
        rng.bit_generator.state = _arrays(rng.bit_generator.state, data)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _arrays(template: Any, data: Any) -> Any:
    """``data`` with lists turned back into arrays where ``template`` holds arrays."""
    if isinstance(template, np.ndarray):
        return np.asarray(data, dtype=template.dtype)
    if isinstance(template, Mapping):
        return {k: _arrays(template.get(k), v) for k, v in data.items()}
    return data
