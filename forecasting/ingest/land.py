"""Landing pulled data in the lake and the per-feed status report an operator reads.

`run_ingest` is the plain-Python path (notebooks, tests): pull in a thread pool, then land under
the lake's write lock. The Prefect flows run the same `pull` and `land` as tasks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd

from forecasting.config import Settings
from forecasting.feeds.base import Feed
from forecasting.ingest.pull import PullOutcome, PullPlan, pull_planned
from forecasting.lake.files import LakeFS, write_lock
from forecasting.lake.series_store import AppendResult, append_series

log = logging.getLogger("spotcast.ingest")

REPORT_COLUMNS = ["feed", "zone", "series", "status", "attempts", "rows", "newest_hour", "new_rows", "error"]


@dataclass
class IngestReport:
    """Per-pull status plus what the lake gained; `ok` is False when any pull did not land."""

    outcomes: list[PullOutcome]
    appended: dict[int, AppendResult] = field(default_factory=dict)  # index into outcomes

    @property
    def ok(self) -> bool:
        return all(o.status in ("ok", "empty") for o in self.outcomes)

    @property
    def new_rows(self) -> int:
        return sum(r.new_rows + r.revised_rows for r in self.appended.values())

    def problems(self) -> list[PullOutcome]:
        return [o for o in self.outcomes if o.status not in ("ok", "empty")]

    def table(self) -> pd.DataFrame:
        rows = []
        for i, o in enumerate(self.outcomes):
            landed = self.appended.get(i)
            rows.append(
                {
                    "feed": o.plan.feed,
                    "zone": o.plan.request.zone.name,
                    "series": o.plan.request.series,
                    "status": o.status,
                    "attempts": o.attempts,
                    "rows": o.rows,
                    "newest_hour": o.newest_hour,
                    "new_rows": 0 if landed is None else landed.new_rows + landed.revised_rows,
                    "error": o.error or "",
                }
            )
        return pd.DataFrame(rows, columns=REPORT_COLUMNS)

    def summary(self) -> str:
        """One line per feed × series: the operator's view of the run."""
        table = self.table()
        if table.empty:
            return "nothing to pull"
        grouped = table.groupby(["feed", "series"]).agg(
            pulls=("status", "size"),
            failed=("status", lambda s: int((~s.isin(["ok", "empty"])).sum())),
            rows=("rows", "sum"),
            new_rows=("new_rows", "sum"),
            newest_hour=("newest_hour", "max"),
        )
        return grouped.reset_index().to_string(index=False)


class Landing:
    """Holds the lake's write lock and appends each pull as it completes, so an interrupted backfill
    keeps what it landed and the next run resumes after it. Failed pulls are reported, not landed."""

    def __init__(self, lake: LakeFS, purpose: str) -> None:
        self.lake = lake
        self.purpose = purpose
        self.report = IngestReport([])
        self._lock = write_lock(lake, purpose)

    def __enter__(self) -> Landing:
        self._lock.__enter__()
        self.lake.remove_leftovers(self.lake.root)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._lock.__exit__(*exc_info)

    def add(self, outcome: PullOutcome) -> None:
        self.report.outcomes.append(outcome)
        if outcome.status == "ok" and outcome.frame is not None:
            index = len(self.report.outcomes) - 1
            self.report.appended[index] = append_series(self.lake, outcome.frame, outcome.plan.feed)


def run_ingest(
    settings: Settings,
    lake: LakeFS,
    feeds: dict[str, Feed],
    plans: Sequence[PullPlan],
    purpose: str,
    max_workers: int = 4,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[int, int, PullOutcome], None] | None = None,
) -> IngestReport:
    """Pull all `plans` in parallel (each with its retry policy) and land them in plan order, so an
    interrupted backfill leaves each zone × series a gap-free prefix that a resumed run continues."""

    def one(plan: PullPlan) -> PullOutcome:
        return pull_planned(feeds, plan, settings, sleep)

    with Landing(lake, purpose) as landing, ThreadPoolExecutor(max_workers=max_workers) as pool:
        for done, outcome in enumerate(pool.map(one, plans), start=1):
            landing.add(outcome)
            if progress:
                progress(done, len(plans), outcome)
    return landing.report
