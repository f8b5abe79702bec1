"""The commands that touch no model start fast: they never import torch, lightning or gluonts (seconds
of import time on a small machine)."""

import subprocess
import sys

import pytest

MODEL_LIBRARIES = ("torch", "lightning", "gluonts")


def _imported_modules(*args: str) -> set[str]:
    """The modules `spotcast ARGS` imported, from Python's own import-time report."""
    command = [sys.executable, "-X", "importtime", "-m", "forecasting.cli", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return {
        line.split("|")[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


@pytest.mark.parametrize("args", [("--help",), ("status",), ("models", "list")])
def test_commands_without_a_model_do_not_import_the_model_libraries(args):
    imported = _imported_modules(*args)
    assert "forecasting.config" in imported  # the report was read
    heavy = sorted(m for m in imported if m.split(".")[0] in MODEL_LIBRARIES)
    assert heavy == []
