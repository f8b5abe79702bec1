"""Helper for the kill -9 test (not a test module): run a real backfill into a lake, printing one line
per landed pull.

    python tests/lake/crash_writer.py SETTINGS_JSON AS_OF

SETTINGS_JSON is a file holding the keyword overrides for `load_settings` (lake_root, zones, feeds,
history, retry), so the killed run and the test's re-run use exactly the same settings. The parent
test kills this process with SIGKILL while it lands, then checks the lake and re-runs the backfill.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from forecasting.config import load_settings
from forecasting.ingest.pull import PullOutcome
from forecasting.jobs.ingest import backfill


def main(argv: list[str]) -> int:
    settings_json, as_of = argv
    settings = load_settings(**json.loads(Path(settings_json).read_text()))

    def progress(done: int, total: int, outcome: PullOutcome) -> None:
        print(f"landed {done}/{total} {outcome.status} {outcome.plan.describe()}", flush=True)

    report = backfill(settings, as_of=pd.Timestamp(as_of), progress=progress)
    print(f"done ok={report.ok} new_rows={report.new_rows}", flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
