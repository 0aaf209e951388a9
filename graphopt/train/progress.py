"""Progress of a run: a rich bar with score, best score, calls, tokens and cost; or nothing."""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from graphopt.train.history import StepRecord, UsageTotals


class Reporter(Protocol):
    """What the trainer tells about its progress."""

    def start(self, total: int, done: int) -> None: ...

    def update(self, record: StepRecord, usage: UsageTotals) -> None: ...

    def stop(self) -> None: ...


class Quiet:
    """Reports nothing."""

    def start(self, total: int, done: int) -> None:
        pass

    def update(self, record: StepRecord, usage: UsageTotals) -> None:
        pass

    def stop(self) -> None:
        pass


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


class Bar:
    """A rich progress bar, one tick per step."""

    def __init__(self, console: Console | None = None, description: str = "optimizing") -> None:
        self.console = console
        self.description = description
        self._progress: Progress | None = None
        self._task: Any = None

    def start(self, total: int, done: int) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("score {task.fields[score]}"), TextColumn("best {task.fields[best]}"),
            TextColumn("calls {task.fields[calls]}"), TextColumn("tokens {task.fields[tokens]}"),
            TextColumn("${task.fields[cost]}"), TimeElapsedColumn(),
            console=self.console, transient=False)
        self._task = self._progress.add_task(self.description, total=total, completed=done,
                                             score="-", best="-", calls=0, tokens=0, cost="0.0000")
        self._progress.start()

    def update(self, record: StepRecord, usage: UsageTotals) -> None:
        if self._progress is None:
            return
        score = record.val_score if record.val_score is not None else record.train_score
        self._progress.update(self._task, completed=record.step, score=_number(score),
                              best=_number(record.best_score), calls=usage.calls,
                              tokens=usage.tokens, cost=f"{usage.cost:.4f}")

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
