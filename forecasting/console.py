"""What the `spotcast` command shows, and the full log it keeps of every run.

By default the console shows Spotcast's own lines from INFO on (concise: time and message), other
libraries' lines from WARNING on, and progress bars on an interactive terminal (plain lines
elsewhere, see forecasting.progress). Library chatter never reaches it: lightning's tips and
checkpoint lines are INFO, Prefect's run-state lines (a line per task, tracebacks of a failed run
that the command reports in one line) are left to the log file, and Python warnings (dependencies'
deprecation notices) are captured into the `py.warnings` logger, which only the log file gets.
`--verbose` shows everything the log file gets.

The log file holds the whole run at DEBUG (Spotcast) and INFO (libraries), warnings included:
`<lake>/logs/<YYYY-MM-DD>/<command>-<HHMMSS>.log`, dated by the wall clock. On a local lake it is
written as the run goes (`tail -f` works); on an object store it is uploaded when the run ends.

Handler classes have public names and formatters on purpose: Prefect, when imported after this
setup, keeps the root handlers it recognises as the user's and adds its own console handler otherwise.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext, suppress
from pathlib import Path

import pandas as pd
from rich.console import Console

from forecasting import progress
from forecasting.lake.files import LakeFS

OWN_LOGGERS = ("spotcast", "forecasting")
CHATTY_LOGGERS = ("httpx", "httpcore")
# Prefect's lines about run states ("Finished in state …", tracebacks of failed tasks): the command
# reports the outcome itself, in one line; the log file keeps them.
RUN_STATE_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
LOGS = "logs"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

log = logging.getLogger("spotcast.console")


def _own(record: logging.LogRecord) -> bool:
    return record.name.split(".", 1)[0] in OWN_LOGGERS


class ConsoleFilter(logging.Filter):
    """The console's share of the log: own lines from INFO, others from WARNING, no captured
    warnings and no run-state lines; everything when verbose."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbose:
            return True
        if _own(record):
            return record.levelno >= logging.INFO
        if record.name == "py.warnings" or record.name.startswith(RUN_STATE_LOGGERS):
            return False
        return record.levelno >= logging.WARNING


class ConsoleFormatter(logging.Formatter):
    """`HH:MM:SS message` for Spotcast's INFO lines; level and logger name for everything else."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        if _own(record) and record.levelno == logging.INFO:
            return f"{record.asctime} {record.message}"
        return f"{record.asctime} {record.levelname} {record.name}: {record.message}"


class ConsoleHandler(logging.Handler):
    """Prints through the rich console, so that lines appear above the progress bars."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            style = (
                "red"
                if record.levelno >= logging.ERROR
                else "yellow"
                if record.levelno >= logging.WARNING
                else None
            )
            self.console.print(
                self.format(record), style=style, markup=False, highlight=False, soft_wrap=True
            )
        except Exception:
            self.handleError(record)


def quiet_prefect_shutdown() -> None:
    """Prefect's notice, on a run stopped by a signal, that its event queue is still draining
    ("EventsWorker - Still processing items", logged by a logger of the service's class name): a
    state of its shutdown, not a problem of the run."""
    for name in ("prefect._internal.concurrency", "EventsWorker"):
        logging.getLogger(name).setLevel(logging.ERROR)


def configure(verbose: bool, console: Console) -> None:
    """Route all logging through the console's filter (and, per run, a file: `run_log`)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)  # libraries: INFO into the log file, the console filter decides the rest
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name in CHATTY_LOGGERS:  # one line per request to Prefect's API: only when asked for
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
    quiet_prefect_shutdown()
    handler: logging.Handler = (
        ConsoleHandler(console) if console.is_terminal else logging.StreamHandler(sys.stderr)
    )
    handler.setFormatter(ConsoleFormatter())
    handler.addFilter(ConsoleFilter(verbose))
    for previous in [h for h in root.handlers if any(isinstance(f, ConsoleFilter) for f in h.filters)]:
        root.removeHandler(previous)  # configured again (another command in the same process)
    root.addHandler(handler)
    logging.captureWarnings(True)


@contextmanager
def session(console: Console) -> Iterator[None]:
    """Progress bars while inside, on an interactive terminal; plain progress lines otherwise."""
    with progress.console_display(console) if console.is_terminal else nullcontext():
        yield


class RunLogHandler(logging.FileHandler):
    """The run's log file. A write that fails (a full disk) stops it, said once on the console; the
    run goes on and reports its own outcome (logging's default would print a traceback per line)."""

    def __init__(self, local: Path, shown: str) -> None:
        super().__init__(local, encoding="utf-8")
        self.shown = shown
        self.stopped = False

    def emit(self, record: logging.LogRecord) -> None:
        if not self.stopped:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        problem = sys.exc_info()[1]
        if not isinstance(problem, OSError):
            super().handleError(record)  # a bad log call (wrong arguments) is a bug: logging says so
            return
        self._stop(problem)

    def close(self) -> None:
        try:
            super().close()  # flushes what is buffered: fails on a full disk
        except OSError as exc:
            self._stop(exc)

    def _stop(self, problem: OSError) -> None:
        if self.stopped:
            return
        self.stopped = True
        if self.stream is not None:
            stream, self.stream = self.stream, None
            with suppress(OSError):  # what stayed buffered is lost with the log
                stream.close()
        log.warning("the run log %s stopped: %s", self.shown, " ".join(str(problem).split()))


def log_path(lake: LakeFS, command: str, now: pd.Timestamp) -> str:
    """Where the log of a `command` run started at `now` (local wall clock) lands in the lake."""
    return lake.path(LOGS, f"{now:%Y-%m-%d}", f"{command}-{now:%H%M%S}.log")


@contextmanager
def run_log(lake: LakeFS, command: str) -> Iterator[str | None]:
    """Log everything of this run to a file in the lake (yields its path); an exception leaving the
    block is logged there with its traceback before it propagates. When the file cannot be created
    (a full disk), the run goes on without it (yields None), said once on the console."""
    path = log_path(lake, command, pd.Timestamp.now())
    folder, name = path.rsplit("/", 1)
    with ExitStack() as stack:
        try:
            local = stack.enter_context(lake.staged(folder))
            handler = RunLogHandler(local / name, lake.shown(path))
        except OSError as exc:
            log.warning("no run log: cannot create %s: %s", lake.shown(path), " ".join(str(exc).split()))
            stack.close()
            yield None
            return
        handler.setLevel(logging.DEBUG)
        handler.setFormatter(logging.Formatter(FILE_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            yield path
        except BaseException:
            log.debug("the run ended with an error", exc_info=True)
            raise
        finally:
            root.removeHandler(handler)
            handler.close()
