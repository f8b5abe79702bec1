"""The fault suite's fixtures: a small filled lake with its configuration file, a lake filled from a
bring-your-own CSV, the `spotcast` command run in this process or in one of its own
(`start_command`, its stderr read line by line), one Prefect server for the commands of a module
(`prefect_api`), helper processes that hold the lake's lock or a temporary file, and the lake's content as file hashes (what "nothing already in the lake lost or changed" is checked against).

Every fault case ends with the same three checks: one clear line (`Outcome.message`), the
documented exit code, and the lake's files unchanged (`Lake.hashes()` before and after).
"""

from __future__ import annotations

import contextlib
import io
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil
import pytest
from fault_kit import (
    BYO_AS_OF,
    FILLED_AS_OF,
    HOLD,
    PROJECT_ROOT,
    STOP_WITHIN_S,
    Lake,
    Outcome,
    byo_lake,
    deepforkit_csv,
    lake_config,
)
from spotcast_testing import detached_env, prefect_home

from forecasting.cli import main
from forecasting.config import load_settings
from forecasting.jobs.ingest import backfill


@pytest.fixture(scope="session")
def replay_feeds(replay_source: Path) -> dict:
    return {"replay": {"kind": "replay", "source": str(replay_source), "series": ["price_da", "load_actual"]}}


@pytest.fixture(scope="session")
def _filled_template(
    tmp_path_factory: pytest.TempPathFactory, zone_configs: list[dict], replay_feeds: dict
) -> Path:
    """NO1 and NO2, price_da and load_actual, 2023-01-01 up to what was out at FILLED_AS_OF."""
    folder = tmp_path_factory.mktemp("filled")
    config = lake_config(folder, str(folder / "lake"), zone_configs, replay_feeds)
    report = backfill(load_settings(config), as_of=FILLED_AS_OF)
    assert report.ok and report.new_rows > 0
    return folder / "lake"


@pytest.fixture
def lake(tmp_path: Path, _filled_template: Path, zone_configs: list[dict], replay_feeds: dict) -> Lake:
    """A copy of the filled lake for one test, with its configuration file."""
    root = tmp_path / "lake"
    shutil.copytree(_filled_template, root)
    return Lake(root, lake_config(tmp_path, str(root), zone_configs, replay_feeds))


@pytest.fixture
def byo(tmp_path: Path, zone_configs: list[dict]) -> Lake:
    """A lake of NO1 filled from a bring-your-own CSV (the replay source folder holds NO_1.csv)."""
    lake = byo_lake(tmp_path, zone_configs)
    deepforkit_csv(tmp_path / "byo" / "NO_1.csv")
    assert backfill(lake.settings, as_of=pd.Timestamp(BYO_AS_OF, tz="UTC")).ok
    return lake


@pytest.fixture
def spotcast() -> Callable[..., Outcome]:
    """Run the `spotcast` command in this process (argparse errors included). Output goes to fresh
    buffers, not pytest's per-test capture: Prefect's console handler keeps the stream it first saw."""

    def run(*argv: str) -> Outcome:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as stop:
                code = int(stop.code or 0)
        return Outcome(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture
def hold() -> Iterator[Callable[..., tuple[subprocess.Popen, str]]]:
    """Start `hold.py` (a live holder of the lock or of a temporary file); killed at the end."""
    started: list[subprocess.Popen] = []

    def start(*argv: str) -> tuple[subprocess.Popen, str]:
        process = subprocess.Popen(
            [sys.executable, str(HOLD), *argv], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("holding "), f"hold.py did not start: {line!r}"
        return process, line.removeprefix("holding ").strip()

    yield start
    for process in started:
        process.kill()
        process.wait()


@dataclass
class Command:
    """A `spotcast` command running in a process of its own; its stderr read line by line."""

    process: subprocess.Popen
    lines: queue.Queue
    said: list[str]

    def wait_for(self, text: str, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, "".join(self.said)[-3000:]
                continue
            if line is None or text in line:
                assert line is not None, f"ended before {text!r}:\n" + "".join(self.said)[-3000:]
                return
        pytest.fail(f"no {text!r} within {timeout_s} s:\n" + "".join(self.said)[-3000:])

    def stop(self, signum: int, every_process: bool = False) -> tuple[int, float]:
        """Send `signum` to the command (`kill PID`), or to it and every process it started, as a
        terminal's Ctrl-C (its foreground process group) and systemd's stop (the service's cgroup)
        do; the exit code and the seconds it took to exit."""
        receivers = [psutil.Process(self.process.pid)]
        if every_process:
            receivers += receivers[0].children(recursive=True)
        sent = time.monotonic()
        for receiver in receivers:
            with contextlib.suppress(psutil.NoSuchProcess):
                receiver.send_signal(signum)
        code = self.process.wait(STOP_WITHIN_S * 3)
        return code, time.monotonic() - sent

    @property
    def messages(self) -> list[str]:
        """The command's own lines (`spotcast: …`); waits for the whole of its stderr."""
        while self.lines.get() is not None:
            pass
        text = "".join(self.said)
        assert "Traceback" not in text, text[-3000:]
        return [line.rstrip("\n") for line in self.said if line.startswith("spotcast")]


@pytest.fixture
def start_command(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen] = []

    def start(*argv: str, **env: str) -> Command:
        process = subprocess.Popen(
            [sys.executable, "-m", "forecasting.cli", *argv],
            cwd=PROJECT_ROOT,
            env=detached_env(tmp_path / "prefect", **env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        lines: queue.Queue = queue.Queue()
        said: list[str] = []

        def read() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                said.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        return Command(process, lines, said)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One Prefect server for the commands that run a flow here (each would start one, ~15 s): the
    temporary server of this test process, stopped when it exits."""
    from flows.servers import start_temporary_server

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_HOME", str(prefect_home(tmp_path_factory.mktemp("prefect"))))
        return start_temporary_server()
