"""What `spotcast` shows: commands that touch no model start fast (they never import torch,
lightning or gluonts), and a run's console holds Spotcast's own lines and its result, while the full
log lands in the lake."""

import os
import select
import subprocess
import sys
import time

import pytest
from spotcast_testing import detached_env, tiny_config

MODEL_LIBRARIES = ("torch", "lightning", "gluonts")


def _spotcast(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def _imported_modules(*args: str) -> set[str]:
    """The modules `spotcast ARGS` imported, from Python's own import-time report."""
    done = _spotcast("-X", "importtime", "-m", "forecasting.cli", *args)
    return {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize(
    "args", [("--help",), ("status",), ("models", "list"), ("products",), ("forwards", "show")]
)
def test_commands_without_a_model_do_not_import_the_model_libraries(args):
    imported = _imported_modules(*args)
    assert "forecasting.config" in imported  # the report was read
    heavy = sorted(m for m in imported if m.split(".")[0] in MODEL_LIBRARIES)
    assert heavy == []


@pytest.mark.slow
def test_a_backfill_without_a_terminal_prints_plain_lines_and_its_result_last(tmp_path):
    config = tiny_config(tmp_path, ["NO1"], "2023-05-01")
    env = detached_env(tmp_path / "prefect")

    done = _spotcast(
        "-m", "forecasting.cli", "backfill", "--config", str(config), "--end", "2023-05-08", env=env
    )

    assert done.returncode == 0, done.stderr
    console = done.stdout + done.stderr
    assert "\r" not in console and "\x1b" not in console  # no bar redraws, no colours
    assert "Finished in state" not in console  # Prefect's run-state lines stay in the log file
    assert done.stdout.rstrip().splitlines()[-1].split()[:2] == ["replay", "wind_onshore_da"]  # feed status last
    logs = list((tmp_path / "lake" / "logs").glob("*/backfill-*.log"))
    assert len(logs) == 1
    assert f"full log in {logs[0]}" in done.stderr
    assert "prefect.flow_runs: Finished in state Completed(" in logs[0].read_text()


def _on_a_terminal(command: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str]:
    """Run `command` with a pseudo-terminal of 120 columns as its stdin, stdout and stderr (as a
    user's shell does); returns its exit code and everything it wrote there."""
    import fcntl
    import pty
    import struct
    import termios

    main_fd, terminal_fd = pty.openpty()
    fcntl.ioctl(terminal_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = subprocess.Popen(command, stdin=terminal_fd, stdout=terminal_fd, stderr=terminal_fd, env=env)
    os.close(terminal_fd)
    written = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([main_fd], [], [], 1.0)[0]:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:  # EIO: the command ended and closed its terminal
                    break
                if not chunk:
                    break
                written += chunk
            elif process.poll() is not None:
                break
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(main_fd)
    return process.returncode, written.decode("utf-8", errors="replace")


@pytest.mark.slow
def test_a_backfill_on_a_terminal_shows_a_bar_of_its_pulls(tmp_path):
    config = tiny_config(tmp_path, ["NO1"], "2023-05-01")
    env = detached_env(tmp_path / "prefect", TERM="xterm-256color")
    for name in ("PREFECT_API_URL", "NO_COLOR", "COLUMNS", "LINES"):
        env.pop(name, None)
    command = [sys.executable, "-m", "forecasting.cli", "backfill", "--config", str(config)]

    code, shown = _on_a_terminal([*command, "--end", "2023-05-08"], env)

    assert code == 0, shown
    assert "backfill pulls" in shown and "━" in shown  # the bar, drawn on the terminal
    assert "\x1b[" in shown  # redrawn in place, then removed: not one line per pull
    [end] = [line for line in shown.splitlines() if "backfill pulls: done" in line]
    assert end.rstrip().endswith(" landed, 0 failed)"), end
    assert shown.index("backfill pulls: done") < shown.index("feed status")  # the result last
