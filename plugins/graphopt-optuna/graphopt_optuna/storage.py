"""Where a study lives, and an in-memory study's trials written as JSON data and read back."""

from __future__ import annotations

import datetime
import os
from typing import Any, Mapping

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState


def open_storage(storage: str | os.PathLike[str] | None) -> optuna.storages.BaseStorage | str | None:
    """What ``optuna.create_study`` takes for ``storage``.

    ``None`` is an in-memory study; a URL (``"sqlite:///study.db"``, ``"postgresql://…"``) a
    database; any other string or path a journal file, created if missing. The last two are
    shared by every process that opens them with the same study name.
    """
    if storage is None:
        return None
    location = os.fspath(storage)
    if "://" in location:
        return location
    return JournalStorage(JournalFileBackend(location))


def trial_to_json(trial: FrozenTrial) -> dict[str, Any]:
    """One trial, every field a JSON value (distributions in Optuna's own JSON form)."""
    return {
        "number": trial.number,
        "state": trial.state.name,
        "values": trial.values,
        "params": trial.params,
        "distributions": {n: distribution_to_json(d) for n, d in trial.distributions.items()},
        "intermediate_values": {str(step): v for step, v in trial.intermediate_values.items()},
        "user_attrs": trial.user_attrs,
        "system_attrs": trial.system_attrs,
        "datetime_start": _time_to_json(trial.datetime_start),
        "datetime_complete": _time_to_json(trial.datetime_complete),
    }


def trial_from_json(data: Mapping[str, Any]) -> FrozenTrial:
    """The trial ``trial_to_json`` wrote, ready for ``Study.add_trials``."""
    values = data["values"]
    return FrozenTrial(
        number=data["number"],
        state=TrialState[data["state"]],
        value=None,
        values=values,
        datetime_start=_time_from_json(data["datetime_start"]),
        datetime_complete=_time_from_json(data["datetime_complete"]),
        params=dict(data["params"]),
        distributions={n: json_to_distribution(d) for n, d in data["distributions"].items()},
        user_attrs=dict(data["user_attrs"]),
        system_attrs=dict(data["system_attrs"]),
        intermediate_values={int(step): v for step, v in data["intermediate_values"].items()},
        trial_id=data["number"],
    )


def _time_to_json(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time_from_json(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text) if text is not None else None
