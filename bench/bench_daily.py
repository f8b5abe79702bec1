"""Benchmark of the daily run with a trained model: the Prefect flow against the same library calls
without Prefect, in the same process and on the same lake, plus `spotcast daily` end to end.

    .venv/bin/python bench/bench_daily.py [--repeats 3]

Needs a lake with a champion (the first `make run` leaves one in data/lake). Every run works on a
fresh copy of that lake, as of its newest instant, with the forecast's own raw forecast removed from
the track record: the steady state of a daily run (one new issue to forecast, its 16 calibration
issues already in the track record).

  library   ingest.daily (ingest) → load the champion → issue the forecast → write the report
  flow      flows.daily.daily_flow, against a Prefect server started here on 127.0.0.1
  cli       `spotcast daily` in a subprocess: with that server (PREFECT_API_URL), and without one
            (Prefect starts a temporary server for the run)

Prints medians and the flow / library ratio. Caveat: THIS machine only; run with nothing else heavy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import peak_mb, reset_peak, timed

from flows.defaults import apply_prefect_defaults

apply_prefect_defaults()  # before Prefect loads, as the spotcast command does

from flows.servers import prefect_server  # noqa: E402
from forecasting.config import DEFAULT_CONFIG, PROJECT_ROOT, load_settings  # noqa: E402
from forecasting.lake.files import LakeFS  # noqa: E402
from forecasting.lake.track_record import TRACK_RECORD  # noqa: E402

CONFIG_NAME = "spotcast.toml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_lake(source: Path, work: Path) -> Path:
    """A copy of the lake and a configuration pointing at it; the newest track-record issue removed."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work / "lake", ignore=shutil.ignore_patterns("_lock.json", "logs"))
    models = work / "lake" / TRACK_RECORD
    for model in models.iterdir() if models.exists() else []:
        issues = sorted(model.iterdir())
        if issues:
            shutil.rmtree(issues[-1])
    models = PROJECT_ROOT / "data" / "models"
    lake_root = f'lake_root = "{work / "lake"}"\nmodels_root = "{models}"'
    config = DEFAULT_CONFIG.read_text().replace('lake_root = "data/lake"', lake_root)
    config = config.replace('source = "data/bundled"', f'source = "{PROJECT_ROOT / "data" / "bundled"}"')
    (work / CONFIG_NAME).write_text(config)
    return work / CONFIG_NAME


def library_daily(config: Path) -> None:
    from forecasting.jobs import ingest
    from forecasting.jobs.forecast import issue_forecast
    from forecasting.jobs.reporting import write_daily_report
    from forecasting.model import registry

    settings = load_settings(config)
    as_of = ingest.resolve_as_of(settings, None)
    report = ingest.daily(settings, as_of)[-1]
    model = registry.load_champion(LakeFS.of(settings), settings, as_of)
    issued = issue_forecast(settings, model, as_of, report.table())
    write_daily_report(settings, issued, report.table())


def flow_daily(config: Path) -> None:
    from flows.daily import daily_flow

    daily_flow(config=str(config))


def timed_on_fresh_lake(run: Callable[[Path], None], source: Path, work: Path) -> float:
    config = fresh_lake(source, work)  # not timed
    return timed(lambda: run(config))[0]


def cli_daily(config: Path, api_url: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    began = time.perf_counter()
    subprocess.run(
        [str(Path(sys.executable).parent / "spotcast"), "daily", "--config", str(config)],
        env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    source = Path(load_settings().lake_root)
    if not (source / "model_runs").exists():
        sys.exit(f"no trained model in {source}: run `make run` first")

    with tempfile.TemporaryDirectory(prefix="spotcast-bench-") as folder:
        work = Path(folder)
        os.environ["PREFECT_HOME"] = str(work / "prefect")
        with prefect_server("127.0.0.1", free_port()) as api_url:
            os.environ["PREFECT_API_URL"] = api_url
            library, flow, peaks = [], [], []
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                reset_peak()
                library.append(timed_on_fresh_lake(library_daily, source, work / "run"))
                flow.append(timed_on_fresh_lake(flow_daily, source, work / "run"))
                peaks.append(peak_mb())
            with_server = [cli_daily(fresh_lake(source, work / "run"), api_url) for _ in range(args.repeats)]
        del os.environ["PREFECT_API_URL"]
        temporary = [cli_daily(fresh_lake(source, work / "run"), None) for _ in range(args.repeats)]

    lib, flo = statistics.median(library), statistics.median(flow)
    print(f"library calls        median {lib:6.1f} s  {[round(t, 1) for t in library]}")
    print(f"daily flow           median {flo:6.1f} s  {[round(t, 1) for t in flow]}  "
          f"= {flo / lib:.2f}× library (+{flo - lib:.1f} s)")
    print(f"spotcast daily, running server    median {statistics.median(with_server):6.1f} s  "
          f"{[round(t, 1) for t in with_server]}")
    print(f"spotcast daily, temporary server  median {statistics.median(temporary):6.1f} s  "
          f"{[round(t, 1) for t in temporary]}")
    print(f"peak RSS of this process (library + flow runs): {max(peaks):.0f} MB")
    print("(this machine only; the lake copy is not timed)")


if __name__ == "__main__":
    main()
