"""How far a long step is: one progress API for library code, shown by whoever runs it.

Library code reports progress and never asks where it goes:

    from forecasting import progress

    with progress.task(f"training member {k + 1}/{n}", total=max_epochs) as step:
        for epoch in range(max_epochs):
            loss = ...
            step.advance(detail=f"loss {loss:.3f}")   # one unit done; the detail is optional

    for origin in progress.track(origins, "backtest origins"):   # total = len(origins) if it has one
        ...

`task(description, total=None)` is a context manager yielding a `Step` with `advance(n=1, detail=None)`
and `completed`; `total=None` counts without a bar end. `track(iterable, description, total=None)`
wraps an iterable in a task that advances once per item. Both are cheap (a counter and a log line at
DEBUG per advance), thread-safe, and may nest (a task inside a tracked loop shows as a second bar).

How it is shown:

* On an interactive terminal, once the front end attached a display (`spotcast` does, with
  `console_display(console)`): one rich progress bar per running task; when the task ends its bar is
  removed and one INFO line says what was done and how long it took.
* Everywhere else (no terminal: CI, cron, a Prefect worker; or library use without the CLI): plain
  log lines on the `spotcast.progress` logger, no redraws: one INFO line when a task starts, one when
  it ends, and in between, at most once every PLAIN_INTERVAL_S, one of how far it is ("backfill
  pulls: 120/500 (118 landed, 2 failed)"); each advance is a DEBUG line (in the run's log file).

The end line carries the last advance's detail: "backfill pulls: done 500/500 in 41 min 10 s (498
landed, 2 failed)". A task without a total that never advanced (a step: "loading the model") ends
"loading the model: done in 3.1 s".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

log = logging.getLogger("spotcast.progress")

T = TypeVar("T")

_display: Progress | None = None  # the attached rich display, None: plain log lines
_display_lock = threading.Lock()
# Without a display: how far a long task is, as an INFO line at most this often (a cron log, a worker).
PLAIN_INTERVAL_S = 60.0


class Step:
    """A running task: `advance()` once per unit of work."""

    def __init__(self, description: str, total: int | None, bar: TaskID | None) -> None:
        self.description = description
        self.total = total
        self.completed = 0
        self.detail: str | None = None  # the last advance's
        self._bar = bar
        self._lock = threading.Lock()
        self._said_at = time.monotonic()  # the last INFO line (plain lines only)

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        with self._lock:
            self.completed += n
            done = self.completed
            if detail:
                self.detail = detail
            now = time.monotonic()
            say = self._bar is None and now - self._said_at >= PLAIN_INTERVAL_S
            if say:
                self._said_at = now
        display = _display
        if self._bar is not None and display is not None:
            display.update(self._bar, advance=n, detail=detail or "")  # thread-safe in rich
        level = logging.INFO if say else logging.DEBUG
        log.log(level, "%s: %s%s", self.description, self._count(done), f" ({detail})" if detail else "")

    def _count(self, done: int) -> str:
        return f"{done}/{self.total}" if self.total is not None else str(done)


def _add_bar(description: str, total: int | None) -> TaskID | None:
    """A bar on the attached display, started with its first bar: between tasks nothing redraws, so
    what the command prints then is not torn."""
    with _display_lock:
        if _display is None:
            return None
        if not _display.task_ids:
            _display.start()
        return _display.add_task(description, total=total, detail="")


def _remove_bar(bar: TaskID) -> None:
    with _display_lock:
        if _display is None:
            return
        _display.remove_task(bar)
        if not _display.task_ids:
            _display.stop()


@contextmanager
def task(description: str, total: int | None = None) -> Iterator[Step]:
    """One long step, shown as a bar on a terminal and as a start and an end line elsewhere."""
    bar = _add_bar(description, total)
    log.log(logging.DEBUG if bar is not None else logging.INFO, "%s …", description)
    step = Step(description, total, bar)
    began = time.perf_counter()
    finished = False
    try:
        yield step
        finished = True
    finally:
        if bar is not None:
            _remove_bar(bar)
        seconds = time.perf_counter() - began
        count = "" if step.total is None and step.completed == 0 else f" {step._count(step.completed)}"
        outcome = f"done{count} in" if finished else f"stopped{' at' if count else ''}{count} after"
        detail = f" ({step.detail})" if step.detail else ""
        log.info("%s: %s %s%s", description, outcome, _duration(seconds), detail)


def track(iterable: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate `iterable` as one task advancing per item (`total` defaults to its length, if any)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    with task(description, total) as step:
        for item in iterable:
            yield item
            step.advance()


@contextmanager
def console_display(console: Console) -> Iterator[None]:
    """While inside, tasks show as rich progress bars on `console` (an interactive terminal): for the
    front end only. Log lines must go to the same console (a handler printing through it), so that
    they appear above the bars instead of tearing them."""
    global _display
    display = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        _Count(),
        TimeElapsedColumn(),
        _Eta(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        transient=True,  # nothing of the bars stays on screen: the end lines say what was done
        redirect_stdout=False,
        redirect_stderr=False,
    )
    with _display_lock:
        if _display is not None:
            raise RuntimeError("a progress display is already attached")
        _display = display
    try:
        yield
    finally:
        with _display_lock:
            _display = None
            display.stop()


class _Count(MofNCompleteColumn):
    """done/total; nothing for a step without a total (a pulsing bar and the time it has taken)."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


class _Eta(TimeRemainingColumn):
    """`eta 0:01:10` for a task with a total; nothing for a step without one."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else Text.assemble("eta ", super().render(task))


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
