"""`--out` that cannot be written: refused in one line (exit 2) before anything is computed or
stored — no forecast, input status, track record or run log lands in the lake (was: exit 1, two
tracebacks, and 23 new files in the lake)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_kit import AS_OF, Lake

from forecasting.cli import EXIT_USAGE
from forecasting.console import LOGS


def _unwritable(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp_path / "a-file.txt"
    a_file.write_text("not a folder")
    a_folder = tmp_path / "named-like-a-file.csv"
    a_folder.mkdir()
    return {
        "under /proc": (Path("/proc/nope/x.csv"), "cannot create a file there"),
        "under an existing file": (a_file / "x.csv", "cannot create a file there"),
        "a folder": (a_folder, "is a folder"),
    }


@pytest.mark.parametrize("case", ["under /proc", "under an existing file", "a folder"])
@pytest.mark.parametrize("command", ["forecast", "products"])
def test_an_out_that_cannot_be_written_is_refused_before_anything_lands(
    case: str, command: str, lake: Lake, spotcast, tmp_path: Path
) -> None:
    out, reason = _unwritable(tmp_path)[case]
    before = lake.hashes()

    done = spotcast(command, "--config", str(lake.config), "--as-of", f"{AS_OF:%Y-%m-%dT%H:%M}", "--out", str(out))

    assert done.code == EXIT_USAGE
    assert done.message.startswith(f"spotcast: --out {out}") and reason in done.message
    assert lake.hashes() == before
    assert not (lake.root / LOGS).exists()
