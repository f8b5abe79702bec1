"""Landing pulled data in the lake and the per-feed status report an operator reads.

Each pull lands as soon as it (and every pull planned before it) is done, under the lake's write
lock held for that one append only: a feed that retries for hours never blocks another writer.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field

import pandas as pd

from forecasting.errors import DataError
from forecasting.ingest.pull import PullOutcome
from forecasting.lake.files import CorruptFile, LakeFS, write_lock
from forecasting.lake.series_store import AppendResult, append_series

log = logging.getLogger("spotcast.ingest")

REPORT_COLUMNS = ["feed", "zone", "series", "status", "attempts", "rows", "newest_hour", "new_rows", "error"]


@dataclass
class IngestReport:
    """Per-pull status plus what the lake gained; `ok` is False when any pull did not land."""

    outcomes: list[PullOutcome]
    appended: dict[int, AppendResult] = field(default_factory=dict)  # index into outcomes

    @classmethod
    def combine(cls, reports: list[IngestReport]) -> IngestReport:
        """One report of several runs (a daily run that backfilled first)."""
        combined = cls([])
        for report in reports:
            offset = len(combined.outcomes)
            combined.outcomes += report.outcomes
            combined.appended.update({offset + i: result for i, result in report.appended.items()})
        return combined

    @property
    def ok(self) -> bool:
        return all(o.status in ("ok", "empty") for o in self.outcomes)

    @property
    def new_rows(self) -> int:
        return sum(r.new_rows + r.revised_rows for r in self.appended.values())

    def problems(self) -> list[PullOutcome]:
        return [o for o in self.outcomes if o.status not in ("ok", "empty")]

    def not_landed(self, shown: int = 3) -> str:
        """One short line on the pulls that did not land: how many of how many ("none of the N" when
        none did), then the reasons, counted per distinct reason (the pull's own name taken out of
        it), the `shown` most frequent first, each with the first pull it stopped."""
        problems = self.problems()
        total = len(self.outcomes)
        if len(problems) == total:
            head = f"none of the {total} pulls landed" if total > 1 else "the pull did not land"
        else:
            head = f"{len(problems)} of the {total} pulls did not land"
        by_reason: dict[str, list[PullOutcome]] = {}
        for outcome in problems:
            by_reason.setdefault(_reason(outcome), []).append(outcome)
        ranked = sorted(by_reason.items(), key=lambda item: -len(item[1]))  # stable: first seen first
        parts = [
            f"{len(stopped)} × {reason} (first: {stopped[0].plan.describe()})"
            for reason, stopped in ranked[:shown]
        ]
        if len(ranked) > shown:
            parts.append(f"{len(ranked) - shown} other reason(s), each pull's in the run log")
        return f"{head}: " + "; ".join(parts)

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


# "entsoe price_da NO1 [2023-01-01 00:00, 2023-04-01 00:00) UTC: " in a pull's error: which pull, not why
_PULL_NAME = re.compile(r"(?:\S+ ){1,3}\[\d{4}-\d\d-\d\d \d\d:\d\d, \d{4}-\d\d-\d\d \d\d:\d\d\) UTC:?\s*")
REASON_CHARS = 160


def _reason(outcome: PullOutcome) -> str:
    """Why a pull did not land, without the pull's name (so equal reasons count together), short."""
    reason = " ".join(_PULL_NAME.sub("", outcome.error or outcome.status).split()) or outcome.status
    return reason if len(reason) <= REASON_CHARS else reason[: REASON_CHARS - 1] + "…"


class Landing:
    """Appends each pull under the lake's write lock, one at a time and in the order given, so an
    interrupted backfill keeps what it landed and the next run resumes after it. Failed pulls are
    reported, not landed; a pull whose lake file is corrupt, or whose rows the lake refuses, is
    reported failed with the reason while the others land."""

    def __init__(self, lake: LakeFS, purpose: str, lock_wait_s: float = 0.0) -> None:
        self.lake = lake
        self.purpose = purpose
        self.lock_wait_s = lock_wait_s
        self.report = IngestReport([])
        self._cleaned = False

    def add(self, outcome: PullOutcome) -> PullOutcome:
        """Land `outcome` if it fetched rows; returns it as reported (failed if it could not land)."""
        index = len(self.report.outcomes)
        self.report.outcomes.append(outcome)
        if outcome.status != "ok" or outcome.frame is None:
            return outcome
        try:
            with write_lock(self.lake, self.purpose, self.lock_wait_s):
                if not self._cleaned:  # once per run: leftovers of writers that are gone
                    self.lake.remove_leftovers(self.lake.root)
                    self._cleaned = True
                self.report.appended[index] = append_series(self.lake, outcome.frame, outcome.plan.feed)
        except (CorruptFile, DataError) as problem:
            log.error("not landed: %s: %s", outcome.plan.describe(), problem)
            outcome = dataclasses.replace(outcome, status="failed", error=f"not landed: {problem}")
            self.report.outcomes[index] = outcome
        return outcome
