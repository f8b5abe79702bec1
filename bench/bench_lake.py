"""Benchmark of the Parquet lake: full backfill of the bundled history (5 zones, replay), a bulk append of
the same rows (lake layer only), one daily append, and a one-month read of one zone, each next to plain
pyarrow doing the same I/O on the same rows in the same run.

    .venv/bin/python bench/bench_lake.py [--backfill-runs 3] [--runs 5] [--keep DIR] [--steps append …]

Every run of every step (and the preparation) is a fresh subprocess, so its peak RSS is its own: wall
time is measured around the step only (imports and setup excluded); peak RSS is that process's high-water
mark at the end (VmHWM; ru_maxrss where /proc is missing), which includes the interpreter, imports and
setup, so the peak after setup is printed too.

What each pair compares:
  backfill       spotcast backfill() end to end (replay read + publication stamps + pulls + raw and
                 curated writes + lock)  vs  pq.write_to_dataset of the landed rows, hive series/zone/year
  bulk append    append_series() of the same rows into an empty lake (raw + curated, no feed)
                 vs  the same pq.write_to_dataset
  daily          spotcast daily() for the next day on a lake current as of the day before (replay
                 read, newest_hours, lookback pulls, upserts)  vs  pq.write_to_dataset appending the
                 rows the daily added to a copy of the pyarrow dataset
  month read     read_series(zone NO1, March 2023, all series)  vs  pyarrow.dataset with hive
                 partitioning and the same filter

Caveat: the machine may be shared; numbers are noisy. Printed first: CPU count and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from forecasting.config import Settings, load_settings
from forecasting.jobs.ingest import backfill, daily
from forecasting.lake.files import LakeFS, write_lock
from forecasting.lake.series_store import append_series, read_series
from forecasting.schema import DELIVERY_HOUR, KEY_COLUMNS, SERIES_COL, ZONE

# 14:00 in Oslo, after the day-ahead release; the daily append is for the next day (the recording's
# last complete daily run: its prices for June 30 are the last ones recorded).
AS_OF = pd.Timestamp("2023-06-28 12:00", tz="UTC")
NEXT_DAY = AS_OF + pd.Timedelta(days=1)
MONTH_ZONE = "NO1"
MONTH_START = pd.Timestamp("2023-03-01", tz="UTC")
MONTH_END = pd.Timestamp("2023-04-01", tz="UTC")
PARTITIONS = [SERIES_COL, ZONE, "year"]
FAST_RETRY = {
    "not_available": {"interval_s": 0.01, "backoff": 1.0, "max_attempts": 2},
    "site_down": {"interval_s": 0.01, "backoff": 1.0, "max_attempts": 2},
}


def bench_settings(lake_root: Path) -> Settings:
    """The default configuration (5 zones, replay of data/bundled) with a lake of our own."""
    return load_settings(lake_root=str(lake_root), retry=FAST_RETRY)


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux keeps ru_maxrss across execve (a child started by a big parent
    reports the parent's peak), so the per-process high-water mark VmHWM is preferred where present."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def with_year(table: pa.Table) -> pa.Table:
    return table.append_column("year", pc.year(table.column(DELIVERY_HOUR)).cast(pa.int32()))


def pa_write(table: pa.Table, root: Path) -> None:
    pq.write_to_dataset(
        table,
        root,
        partition_cols=PARTITIONS,
        basename_template=f"part-{uuid.uuid4().hex}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        compression="zstd",
    )


# Each measured step (and the label of its row) with the plain pyarrow step it is compared to.
STEPS = {
    "backfill": ("backfill (end to end)", "pa_write_backfill_rows"),
    "append": ("bulk append (lake only)", "pa_write_backfill_rows"),
    "daily": ("daily append (end to end)", "pa_daily"),
    "read": (f"one-month read ({MONTH_ZONE}, all series)", "pa_read"),
}


# --- the steps, each run in its own process --------------------------------------------------------


def step(name: str, work: Path) -> dict:
    """Set up (untimed), run the step (timed); returns wall seconds, rows and RSS figures."""
    scratch = Path(tempfile.mkdtemp(dir=work, prefix=f"{name}-"))
    action, rows_of = None, None
    if name == "backfill":
        settings = bench_settings(scratch / "lake")
        action = lambda: backfill(settings, as_of=AS_OF)  # noqa: E731
        rows_of = lambda report: report.new_rows  # noqa: E731
    elif name == "pa_write_backfill_rows":
        table = with_year(pq.read_table(work / "backfill_rows.parquet"))
        action = lambda: pa_write(table, scratch / "dataset")  # noqa: E731
        rows_of = lambda _: table.num_rows  # noqa: E731
    elif name == "append":
        frame = pd.read_parquet(work / "backfill_rows.parquet")
        lake = LakeFS.open(str(scratch / "lake"))

        def action() -> object:
            with write_lock(lake, "bench"):
                return append_series(lake, frame, "replay")

        rows_of = lambda result: result.new_rows  # noqa: E731
    elif name == "daily":
        shutil.copytree(work / "ref-lake", scratch / "lake")
        settings = bench_settings(scratch / "lake")
        action = lambda: daily(settings, as_of=NEXT_DAY)[-1]  # noqa: E731
        rows_of = lambda report: report.new_rows  # noqa: E731
    elif name == "pa_daily":
        shutil.copytree(work / "ref-dataset", scratch / "dataset")
        table = with_year(pq.read_table(work / "daily_rows.parquet"))
        action = lambda: pa_write(table, scratch / "dataset")  # noqa: E731
        rows_of = lambda _: table.num_rows  # noqa: E731
    elif name == "read":
        lake = LakeFS.open(str(work / "ref-lake"))
        action = lambda: read_series(lake, zones=[MONTH_ZONE], start=MONTH_START, end=MONTH_END)  # noqa: E731
        rows_of = len
    elif name == "pa_read":
        curated = work / "ref-lake" / "curated"

        def action() -> pa.Table:
            dataset = ds.dataset(curated, format="parquet", partitioning="hive")
            condition = (
                (ds.field(ZONE) == MONTH_ZONE)
                & (ds.field("year") == MONTH_START.year)
                & (ds.field(DELIVERY_HOUR) >= pa.scalar(MONTH_START, pa.timestamp("ns", tz="UTC")))
                & (ds.field(DELIVERY_HOUR) < pa.scalar(MONTH_END, pa.timestamp("ns", tz="UTC")))
            )
            return dataset.to_table(filter=condition)

        rows_of = lambda table: table.num_rows  # noqa: E731
    else:
        raise SystemExit(f"unknown step {name}")
    setup_rss = peak_rss_mb()
    start = time.perf_counter()
    result = action()
    wall = time.perf_counter() - start
    figures = {
        "wall_s": wall,
        "rows": int(rows_of(result)),
        "peak_rss_mb": peak_rss_mb(),
        "setup_rss_mb": setup_rss,
    }
    if name in ("backfill", "daily"):
        figures["ok"] = bool(result.ok)
    shutil.rmtree(scratch, ignore_errors=True)
    return figures


def prepare(work: Path) -> dict:
    """Reference data for the steps: the backfilled rows, a lake current as of AS_OF, the rows the
    next day's daily run adds, and the pyarrow dataset of the backfilled rows."""
    lake_root = work / "ref-lake"
    settings = bench_settings(lake_root)
    report = backfill(settings, as_of=AS_OF)
    lake = LakeFS.open(str(lake_root))
    rows = read_series(lake)
    rows.to_parquet(work / "backfill_rows.parquet", index=False)
    pa_write(with_year(pa.Table.from_pandas(rows, preserve_index=False)), work / "ref-dataset")
    (current,) = daily(settings, as_of=AS_OF)  # the lake as the daily run of AS_OF leaves it
    before = read_series(lake)
    scratch = work / "scratch-lake"
    shutil.copytree(lake_root, scratch)
    (next_day,) = daily(bench_settings(scratch), as_of=NEXT_DAY)
    after = read_series(LakeFS.open(str(scratch)))
    added = after.merge(before[KEY_COLUMNS], on=KEY_COLUMNS, how="left", indicator=True)
    added = added[added["_merge"] == "left_only"].drop(columns="_merge")
    added.to_parquet(work / "daily_rows.parquet", index=False)
    shutil.rmtree(scratch)
    return {
        "backfill_rows": len(rows),
        "backfill_ok": report.ok,
        "daily_problems": [o.plan.describe() for o in current.problems() + next_day.problems()],
        "daily_rows": len(added),
    }


# --- the parent: runs, medians, the table ------------------------------------------------------------


def run_child(name: str, work: Path) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", name, "--work", str(work)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"step {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, work: Path, runs: int) -> dict:
    results = [run_child(name, work) for _ in range(runs)]
    rows = {r["rows"] for r in results}
    if len(rows) != 1:
        raise SystemExit(f"step {name}: row counts differ between runs: {sorted(rows)}")
    wall = statistics.median(r["wall_s"] for r in results)
    return {
        "runs": runs,
        "wall_s": wall,
        "min_s": min(r["wall_s"] for r in results),
        "rows": rows.pop(),
        "rows_per_s": results[0]["rows"] / wall if wall else float("nan"),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
        "setup_rss_mb": max(r["setup_rss_mb"] for r in results),
        "ok": all(r.get("ok", True) for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backfill-runs", type=int, default=3, help="runs of the backfill steps")
    parser.add_argument("--runs", type=int, default=5, help="runs of the append, daily and read steps")
    parser.add_argument(
        "--keep",
        help="work in this folder and keep it (default: a temporary folder); a kept, prepared "
        "folder is reused, so a rerun measures without preparing again",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        choices=STEPS,
        default=list(STEPS),
        help="measure only these steps (default: all)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "prepare":
        print(json.dumps(prepare(Path(args.work))))
        return
    if args.child:
        print(json.dumps(step(args.child, Path(args.work))))
        return

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-lake-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"python {sys.version.split()[0]}, pyarrow {pa.__version__}, pandas {pd.__version__}"
    )
    started = time.perf_counter()
    prepared = work / "prepared.json"
    if prepared.exists():
        facts = json.loads(prepared.read_text())
    else:
        facts = run_child("prepare", work)
        prepared.write_text(json.dumps(facts))
    print(
        f"prepared in {time.perf_counter() - started:.0f} s: backfill as of {AS_OF} lands "
        f"{facts['backfill_rows']:,} rows (ok={facts['backfill_ok']}); the daily run of {NEXT_DAY} adds "
        f"{facts['daily_rows']:,} rows; daily pulls not ok: {facts['daily_problems'] or 'none'}"
    )
    runs = {
        "backfill": args.backfill_runs,
        "append": args.backfill_runs,
        "daily": args.runs,
        "read": args.runs,
    }
    pairs = [
        (label, ours, theirs, runs[ours]) for ours, (label, theirs) in STEPS.items() if ours in args.steps
    ]
    print(
        f"\n{'step':<44} {'runs':>4} {'median s':>9} {'min s':>8} {'rows':>10} {'rows/s':>11} "
        f"{'peak RSS MB':>11} {'setup RSS':>9}  {'x pyarrow':>9}"
    )
    baselines: dict[str, dict] = {}
    for label, ours, theirs, runs in pairs:
        mine = measure(ours, work, runs)
        if theirs not in baselines:
            baselines[theirs] = measure(theirs, work, runs)
        plain = baselines[theirs]
        ratio = f"{mine['wall_s'] / plain['wall_s']:>9.1f}"
        for who, fig, extra in (
            (f"{label}: spotcast", mine, ratio),
            ("  plain pyarrow, same rows", plain, ""),
        ):
            print(
                f"{who:<44} {fig['runs']:>4} {fig['wall_s']:>9.3f} {fig['min_s']:>8.3f} "
                f"{fig['rows']:>10,} {fig['rows_per_s']:>11,.0f} {fig['peak_rss_mb']:>11.0f} "
                f"{fig['setup_rss_mb']:>9.0f}  {extra}",
                flush=True,
            )
        if not mine["ok"]:
            print("  (warning: a run reported pulls that were not ok)")
    print(
        "\nwall: median (and min) of the runs, step only; rows/s = rows / median wall; "
        "peak RSS: high-water mark (VmHWM) of the step's own process (interpreter + imports + setup + step); "
        "setup RSS: that process's peak before the step; x pyarrow: spotcast median / pyarrow median."
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
