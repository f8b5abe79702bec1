"""An s3:// lake against a real S3-compatible server (moto's, on 127.0.0.1): the commands an operator
runs, the lake's write lock as a conditional PUT, single PUTs to final keys, DuckDB reading the
curated area, a backtest's results and report, store errors as one line, and a second host that
runs the daily job from the object store alone (its models there too)."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer
from spotcast_testing import detached_env, dump_toml, issue_tiny_forecast, tiny_config

from forecasting.config import load_settings
from forecasting.errors import LakeError
from forecasting.evaluation.backtest import BacktestResult, run_backtest
from forecasting.evaluation.baselines import SeasonalNaive
from forecasting.feeds.replay import ReplayFeed
from forecasting.jobs.backtest import BACKTESTS, write_backtest
from forecasting.lake.files import LOCK_NAME, TMP_PREFIX, LakeBusy, LakeFS, write_lock
from forecasting.lake.forecast_store import issue_dates, read_forecast
from forecasting.lake.series_store import read_series
from forecasting.model import registry
from forecasting.model.store import MANIFEST_FILE

SECRET = "s3cret-never-shown-8d1f"  # the test server accepts any key; this one must show nowhere


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free local port; the environment that points the AWS SDK at it (also
    set in this process while the module runs)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ACCESS_KEY_ID": "spotcast-test",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # no instance-metadata lookups for credentials
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env
    server.stop()


def new_bucket() -> str:
    name = f"lake-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return name


@pytest.fixture
def lake_url(s3_env: dict[str, str]) -> str:
    return f"s3://{new_bucket()}/lake"


def spotcast(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "forecasting.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def operated(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """backfill, then daily (trains the first model, forecasts, reports), then forecast the next day,
    each as `spotcast` commands on an s3:// lake (one zone, a tiny model)."""
    folder = tmp_path_factory.mktemp("s3-operated")
    url = f"s3://{new_bucket()}/lake"
    config = tiny_config(folder, ["NO1"], "2018-09-01", lake_root=url)
    env = detached_env(folder / "prefect", **s3_env)
    done = {}
    for command, as_of in (
        ("backfill", "2019-03-04T13:30"),
        ("daily", "2019-03-05T13:30"),
        ("forecast", "2019-03-06T13:30"),
    ):
        done[command] = spotcast(command, "--config", str(config), "--as-of", as_of, env=env)
        assert done[command].returncode == 0, done[command].stderr[-3000:]
    return {"url": url, "lake": LakeFS.open(url), "done": done}


@pytest.mark.slow
def test_backfill_daily_and_forecast_commands_fill_an_s3_lake(operated: dict) -> None:
    lake = operated["lake"]
    assert [d.isoformat() for d in issue_dates(lake)] == ["2019-03-05", "2019-03-06"]
    forecast = read_forecast(lake)
    assert len(forecast) == 672 and set(forecast["zone"]) == {"NO1"}
    champion = registry.champion(lake)
    assert champion is not None and len(registry.list_runs(lake)) == 1
    keys = lake.fs.find(lake.root)
    assert any(f"/track_record/model_id={champion.model_id}/" in k for k in keys)
    assert any(k.endswith("/reports/issue_date=2019-03-05/fan_NO1.png") for k in keys)
    assert any(k.endswith("/reports/issue_date=2019-03-05/summary.md") for k in keys)


@pytest.mark.slow
def test_each_command_leaves_its_full_log_in_the_s3_lake_and_no_lock_or_temporary(operated: dict) -> None:
    lake = operated["lake"]
    keys = lake.fs.find(lake.root)
    logs = [k for k in keys if "/logs/" in k]
    assert sorted(k.rsplit("/", 1)[-1].split("-", 1)[0] for k in logs) == ["backfill", "daily", "forecast"]
    assert b"issued" in b"".join(lake.fs.cat_file(k) for k in logs)
    assert not [k for k in keys if k.endswith(LOCK_NAME) or k.rsplit("/", 1)[-1].startswith(TMP_PREFIX)]


@pytest.mark.slow
def test_the_secret_key_is_in_no_output_and_no_lake_file(operated: dict) -> None:
    lake = operated["lake"]
    shown = "".join(run.stdout + run.stderr for run in operated["done"].values())
    assert SECRET not in shown
    texts = [k for k in lake.fs.find(lake.root) if k.endswith((".log", ".md", ".json", ".csv"))]
    assert texts and not any(SECRET.encode() in lake.fs.cat_file(k) for k in texts)


@pytest.mark.slow
def test_duckdb_reads_the_curated_area_of_the_s3_lake_with_hive_partitions(operated: dict) -> None:
    # DuckDB's own httpfs extension is downloaded on first use (offline here): DuckDB reads through
    # the fsspec file system instead, which is the lake's own.
    lake = operated["lake"]
    db = duckdb.connect()
    db.register_filesystem(lake.fs)
    counts = db.sql(
        f"SELECT series, zone, count(*) FROM read_parquet('{operated['url']}/curated/**/*.parquet', "
        "hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    curated = read_series(lake).groupby(["series", "zone"]).size()
    assert counts == [(series, zone, rows) for (series, zone), rows in curated.items()]
    assert {series for series, _, _ in counts} >= {"price_da", "load_da"}


def test_two_writers_racing_for_the_s3_lock_cannot_both_take_it(lake_url: str) -> None:
    writers = 8
    start = threading.Barrier(writers)
    holders: list[int] = []
    refused: list[LakeBusy] = []

    def writer(number: int) -> None:
        lake = LakeFS.open(lake_url)
        start.wait()
        try:
            with write_lock(lake, f"writer {number}", wait_s=0):
                holders.append(number)
                time.sleep(1.0)  # every other writer tries while this one holds the lock
        except LakeBusy as busy:
            refused.append(busy)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(holders) == 1 and len(refused) == writers - 1
    assert f"pid {os.getpid()}" in str(refused[0]) and f"writer {holders[0]}" in str(refused[0])
    assert not LakeFS.open(lake_url).exists(LakeFS.open(lake_url).path(LOCK_NAME))  # released


def test_a_write_to_s3_is_one_put_per_file_to_its_final_key(lake_url: str) -> None:
    lake = LakeFS.open(lake_url)
    operations: list[str] = []
    lake.fs.s3.meta.events.register("before-call.s3", lambda model, **_: operations.append(model.name))
    files = {lake.path("curated", "a", "data.parquet"): pa.table({"x": [1, 2]}), lake.path("b.json"): b"{}"}

    lake.write_tables_atomic(files)

    assert operations == ["PutObject", "PutObject"]  # no temporary, no copy, no delete
    assert sorted(lake.fs.find(lake.root)) == sorted(files)
    assert lake.read_table(lake.path("curated", "a", "data.parquet")).column("x").to_pylist() == [1, 2]


def test_a_table_that_cannot_be_encoded_replaces_no_file_of_its_s3_write(lake_url: str) -> None:
    lake = LakeFS.open(lake_url)
    first, second = lake.path("first.parquet"), lake.path("second.parquet")
    lake.write_tables_atomic({first: pa.table({"x": [1]}), second: pa.table({"x": [1]})})
    unwritable = pa.table({"x": pa.array([(1, 2, 3)], pa.month_day_nano_interval())})

    with pytest.raises(pa.ArrowNotImplementedError):
        lake.write_tables_atomic({first: pa.table({"x": [2]}), second: unwritable})

    assert lake.read_table(first).column("x").to_pylist() == [1]


@pytest.fixture(scope="module")
def backtest_result() -> BacktestResult:
    """A tiny backtest on the bundled history: two weekly issues for NO1, the seasonal naive as the
    model beside the baselines."""
    settings = load_settings()
    timezones = {zone.name: zone.timezone for zone in settings.zones}
    return run_backtest(
        ReplayFeed.from_settings(settings).history,
        lambda: SeasonalNaive(timezones),
        "2019-03-01",
        "2019-03-15",
        timezones=timezones,
        zones=["NO1"],
    )


def read_backtest(lake: LakeFS, name: str) -> pd.DataFrame:
    """The lake's `backtests/<name>` dataset, partition columns as plain strings, in a fixed order."""
    frame = pq.read_table(lake.path(BACKTESTS, name), filesystem=lake.fs).to_pandas()
    frame = frame.astype({"period": str, "model": str})
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def test_a_backtest_written_to_an_s3_lake_reads_back_row_for_row(
    lake_url: str, backtest_result: BacktestResult
) -> None:
    lake = LakeFS.open(lake_url)

    write_backtest(lake, backtest_result)

    forecasts = read_backtest(lake, "forecasts")
    expected = backtest_result.forecasts[forecasts.columns].sort_values(list(forecasts.columns))
    pd.testing.assert_frame_equal(forecasts, expected.reset_index(drop=True))
    assert len(read_backtest(lake, "metrics")) == len(backtest_result.metrics)
    folders = {k.rsplit("/", 1)[0] for k in lake.fs.find(lake.path(BACKTESTS, "forecasts"))}
    assert folders == {
        lake.path(BACKTESTS, "forecasts", f"period={backtest_result.period}", f"model={model}")
        for model in ("level_shape_naive", "model", "seasonal_naive", "seasonal_naive_empirical")
    }


def test_a_rerun_of_a_backtest_period_replaces_its_results_in_the_s3_lake(
    lake_url: str, backtest_result: BacktestResult
) -> None:
    lake = LakeFS.open(lake_url)
    write_backtest(lake, backtest_result)
    first_issue = backtest_result.forecasts["issued_at"] == backtest_result.origins[0]
    rerun = dataclasses.replace(
        backtest_result,
        origins=backtest_result.origins[:1],
        forecasts=backtest_result.forecasts[first_issue],
        metrics=backtest_result.metrics.head(4),
    )

    write_backtest(lake, rerun)

    forecasts = read_backtest(lake, "forecasts")
    assert len(forecasts) == len(rerun.forecasts) < len(backtest_result.forecasts)
    assert set(forecasts["issued_at"]) == {backtest_result.origins[0]}
    assert len(read_backtest(lake, "metrics")) == len(rerun.metrics)


def test_the_backtest_report_lands_in_the_s3_lake(lake_url: str, backtest_result: BacktestResult) -> None:
    lake = LakeFS.open(lake_url)

    write_backtest(lake, backtest_result)

    report = lake.path("reports", f"backtest_{backtest_result.period}.md")
    assert lake.fs.cat_file(report).decode() == backtest_result.to_markdown()


def test_a_missing_bucket_is_a_lake_error_naming_it(s3_env: dict[str, str]) -> None:
    with pytest.raises(LakeError, match="bucket 'no-such-bucket' does not exist"):
        LakeFS.open("s3://no-such-bucket/lake")


def test_missing_credentials_end_the_command_with_one_line_and_exit_2(
    s3_env: dict[str, str], lake_url: str, tmp_path: Path
) -> None:
    config = tiny_config(tmp_path, ["NO1"], "2018-09-01", lake_root=lake_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=s3_env["AWS_ENDPOINT_URL"], AWS_EC2_METADATA_DISABLED="true")
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))

    done = spotcast("status", "--config", str(config), env=env)

    assert done.returncode == 2
    assert done.stderr.startswith(f"spotcast: no credentials for the lake {lake_url}")
    assert "AWS_ACCESS_KEY_ID" in done.stderr and "Traceback" not in done.stderr


# --- A second host: nothing but the configuration --------------------------------------------------


@pytest.fixture(scope="module")
def second_host(s3_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Host A backfills, trains and forecasts (library calls) with the lake and its models on S3, and
    is then gone. Host B is a folder holding only configs/spotcast.toml, A's configuration without
    models_root (so models default to <lake_root>/models, where A put them); it runs `spotcast daily`
    the next day from that folder, without --config."""
    url = f"s3://{new_bucket()}/lake"
    first = tmp_path_factory.mktemp("host-a")
    config = tiny_config(first, ["NO1"], "2018-09-01", lake_root=url, models_root=f"{url}/models")
    issued = issue_tiny_forecast(config, pd.Timestamp("2019-03-05 13:30", tz="UTC"))
    assert not (first / "models").exists() and not (first / "data").exists()
    raw = tomllib.loads(config.read_text())
    del raw["models_root"]
    shutil.rmtree(first)  # nothing of host A is left on this machine

    second = tmp_path_factory.mktemp("host-b")
    (second / "configs").mkdir()
    (second / "configs" / "spotcast.toml").write_text(dump_toml(raw) + "\n")
    env = detached_env(tmp_path_factory.mktemp("prefect-b"), **s3_env)
    command = [sys.executable, "-m", "forecasting.cli", "daily", "--as-of", "2019-03-06T13:30"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=second)
    return {
        "lake": LakeFS.open(url),
        "url": url,
        "model_id": issued.forecast["model_id"].iloc[0],
        "done": done,
        "folder": second,
    }


@pytest.mark.slow
def test_a_second_host_with_only_the_configuration_forecasts_with_the_champion_from_s3(
    second_host: dict,
) -> None:
    done, lake, model_id = second_host["done"], second_host["lake"], second_host["model_id"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert registry.champion(lake).model_id == model_id
    assert len(registry.list_runs(lake)) == 1  # host B trained nothing: it loaded A's champion
    assert [d.isoformat() for d in issue_dates(lake)] == ["2019-03-05", "2019-03-06"]
    assert set(read_forecast(lake, issue_dates(lake)[-1])["model_id"]) == {model_id}
    assert lake.exists(lake.path("models", model_id, MANIFEST_FILE))
    assert registry.list_runs(lake).iloc[0]["artifact"] == model_id  # relative to models_root
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.slow
def test_the_second_host_writes_nothing_beside_its_configuration(second_host: dict) -> None:
    folder = second_host["folder"]
    assert second_host["done"].returncode == 0, second_host["done"].stderr[-3000:]
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")) == [
        "configs",
        "configs/spotcast.toml",
    ]
