"""Load check of the read-only HTTP API: `spotcast api` in its own process over a lake with a trained
model's issue, N requests (default 200), C at a time (default 8), over every endpoint in turn.

    .venv/bin/python bench/bench_api.py [--config configs/spotcast.toml] [--requests 200] [--concurrency 8]

Without --config it builds a small lake first, in a temporary folder, the way the tests do
(tests/spotcast_testing.py: zones NO1 and NO2, history from 2018-09-01, the tiny real model, one issue
at 2019-03-05 13:30 UTC with its products; a minute or two), and removes it after (--keep DIR keeps
it there). With --config, the newest issue of that lake is read (`spotcast daily` leaves one).

The server runs with a bearer token (every request pays the check). Each endpoint is asked once
before the clock starts (the first /scores scores the track record, the first /lineage imports the
model's modules). Printed: latency p50/p90/p99 over all requests and per endpoint, throughput, failed
requests, and the server process's peak RSS (VmHWM) at the end.
Caveat: THIS machine only, and the client runs on it too; on a shared machine other work inflates
the times.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))  # spotcast_testing: the tests' small lake, built the same way

import httpx  # noqa: E402
import pandas as pd  # noqa: E402
from measure import machine  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"
ISSUED_AT = pd.Timestamp("2019-03-05 13:30", tz="UTC")
ENDPOINTS = [
    "/health",
    "/issues",
    "/forecast",  # every zone, JSON
    "/forecast?zone=NO1&format=csv",
    "/products",
    "/products?kind=week&format=csv",
    "/scores",
    "/status",
    "/lineage?zone=NO1",
]


def build_lake(folder: Path) -> Path:
    from spotcast_testing import issue_tiny_forecast, tiny_config

    config = tiny_config(folder, ["NO1", "NO2"], "2018-09-01")
    started = time.perf_counter()
    issue_tiny_forecast(config, ISSUED_AT)
    print(f"built a small lake in {time.perf_counter() - started:.0f} s: {folder / 'lake'}")
    return config


def start_server(config: Path) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "forecasting.cli", "api", "--config", str(config), "--port", "0"]
    env = {**os.environ, "SPOTCAST_API_TOKEN": TOKEN}
    server = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stderr], daemon=True).start()
    while True:
        line = lines.get(timeout=120)
        if "HTTP API at " in line:
            return server, line.split("HTTP API at ")[1].split()[0]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    cut = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) > 1 else ms * 99
    return f"p50 {cut[49]:7.1f}  p90 {cut[89]:7.1f}  p99 {cut[98]:7.1f}  max {ms[-1]:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="a configuration whose lake holds an issue")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="build the small lake here and keep it")
    args = parser.parse_args()
    print(machine())
    scratch = None
    if args.config is None:
        scratch = args.keep or Path(tempfile.mkdtemp(prefix="spotcast-bench-api-"))
        scratch.mkdir(parents=True, exist_ok=True)
    config = args.config or build_lake(scratch)
    server, url = start_server(config)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    try:
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        with httpx.Client(base_url=url, headers=headers, timeout=120, limits=limits) as client:
            print(f"server pid {server.pid} at {url}; peak RSS after start {peak_rss_mb(server.pid):.0f} MB")
            for path in ENDPOINTS:  # warm-up, not timed into the figures
                started = time.perf_counter()
                status = client.get(path).status_code
                print(f"  first {path:34s} {status}  {1000 * (time.perf_counter() - started):7.1f} ms")

            def ask(number: int) -> tuple[str, float, int]:
                path = ENDPOINTS[number % len(ENDPOINTS)]
                started = time.perf_counter()
                status = client.get(path).status_code
                return path, time.perf_counter() - started, status

            started = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                results = list(pool.map(ask, range(args.requests)))
            wall = time.perf_counter() - started
            rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(30)
        if scratch is not None and args.keep is None:
            shutil.rmtree(scratch, ignore_errors=True)
    failed = [r for r in results if r[2] != 200]
    print(
        f"\n{args.requests} requests, {args.concurrency} concurrent, in {wall:.1f} s "
        f"({args.requests / wall:.1f} requests/s); {len(failed)} failed"
    )
    print(f"all endpoints                       {percentiles([r[1] for r in results])}")
    for path in ENDPOINTS:
        print(f"  {path:34s}{percentiles([r[1] for r in results if r[0] == path])}")
    print(f"server peak RSS {rss:.0f} MB")


if __name__ == "__main__":
    main()
