"""The library does not import the orchestrator: in a Python where `prefect` (and `prefect_dask`, and
the `flows` package that wraps them) cannot be imported at all, as in a notebook without Prefect
installed, every `forecasting` module but the CLI imports, and a forecast and its report bundle are
made. A library module that imports Prefect, at its top or on the way to the forecast, fails this.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The command is the orchestrating entry point: it runs flows, so it may import them.
ORCHESTRATING = ("forecasting.cli",)

# Installed before anything else is imported: `import prefect` (or any submodule) fails as if the
# package were not installed; `find_spec` raising makes no exception for optional imports.
NO_ORCHESTRATOR = """
import importlib.abc
import sys

BLOCKED = ("prefect", "prefect_dask", "flows")


class NoOrchestrator(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (unimportable in this test)", name=name)
        return None


sys.meta_path.insert(0, NoOrchestrator())
"""

LIBRARY_RUN = """
import importlib
import json
import pkgutil
import sys

try:
    import prefect  # noqa: F401
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("prefect is still importable: the test would prove nothing")

import forecasting

skipped = set(sys.argv[2:])
modules = sorted(m.name for m in pkgutil.walk_packages(forecasting.__path__, "forecasting."))
for name in modules:
    if name not in skipped:
        importlib.import_module(name)

import pandas as pd

from forecasting.config import load_settings
from forecasting.evaluation.baselines import SeasonalNaiveEmpirical
from forecasting.feeds.replay import ReplayFeed
from forecasting.publication import known_at
from forecasting.reports.bundle import write_report_bundle

as_of = pd.Timestamp("2023-06-20 12:00", tz="UTC")
settings = load_settings().with_zones(["NO1"])
timezones = settings.zone_timezones
known = known_at(ReplayFeed.from_settings(settings).history, as_of)
forecast = SeasonalNaiveEmpirical(timezones).fit(known).predict(known, as_of)
newest = known.groupby(["zone", "series"], as_index=False)["delivery_hour"].max()
recent = known[known["delivery_hour"] >= as_of - pd.Timedelta(days=21)]
bundle = write_report_bundle(
    sys.argv[1], forecast, recent, None, None, newest.rename(columns={"delivery_hour": "newest_hour"}), timezones
)
loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("prefect", "prefect_dask", "flows"))
print(json.dumps({
    "imported": [name for name in modules if name in sys.modules],
    "orchestrator": loaded,
    "forecast_rows": len(forecast),
    "bundle": sorted(path.name for path in bundle.files),
}))
"""


def test_the_library_imports_and_forecasts_without_prefect(tmp_path: Path) -> None:
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "matplotlib"), "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-c", NO_ORCHESTRATOR + LIBRARY_RUN, str(tmp_path / "bundle"), *ORCHESTRATING],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert "forecasting.reports.bundle" in result["imported"]
    assert "forecasting.jobs.reporting" in result["imported"]
    assert "forecasting.model.pipeline" in result["imported"]
    assert not set(ORCHESTRATING) & set(result["imported"])
    assert result["orchestrator"] == []
    assert result["forecast_rows"] == 672  # four weeks of NO1 hours
    assert {"fan_NO1.png", "summary.md", "weekly.csv"} <= set(result["bundle"])
