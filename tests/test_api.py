"""The read-only HTTP API (forecasting/api.py) against real servers on 127.0.0.1: uvicorn serving the
app in a thread, and `spotcast api` as its own process, over a lake that the library wrote (a tiny
real model: backfill, train, two daily issues, a desk forward landed), read with httpx."""

from __future__ import annotations

import io
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from datetime import date
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from forwards_testing import HEADER, write_csv
from spotcast_testing import issue_tiny_forecast, prefect_home, tiny_config

from forecasting import api
from forecasting.api import API_TOKEN_ENV, api_in_background
from forecasting.cli import EXIT_ERROR, EXIT_OK, EXIT_USAGE, main
from forecasting.config import load_settings
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import (
    read_forecast,
    read_forecast_inputs,
    read_paths,
    read_product_forecast,
    write_forecast,
)
from forecasting.schema import FORECAST_COLUMNS, HORIZON_HOURS

pytestmark = pytest.mark.slow  # trains a tiny model once for the module

FIRST = pd.Timestamp("2019-03-05 13:30", tz="UTC")  # 14:30 Oslo: Wednesday's prices are out
SECOND = pd.Timestamp("2019-03-06 13:30", tz="UTC")  # the next day's run, same champion
FORWARD = "2019-03-04,NO1,2019-W11,base,45.5"  # settled the day before the first issue
TOKEN = "a-long-random-token-5e1f"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake with two whole issues (2019-03-05 and 2019-03-06) and one landed forward."""
    from forecasting.jobs import ingest
    from forecasting.jobs.forecast import issue_forecast
    from forecasting.lake.forward_store import land_forwards
    from forecasting.model.registry import load_champion

    folder = tmp_path_factory.mktemp("api")
    path = tiny_config(folder, ["NO1", "NO2"], "2018-09-01")
    issue_tiny_forecast(path, FIRST)
    settings = load_settings(path)
    assert ingest.backfill(settings, as_of=SECOND).ok
    issue_forecast(settings, load_champion(LakeFS.of(settings), settings), SECOND)
    land_forwards(settings, [write_csv(folder, "settlement.csv", HEADER, FORWARD)])
    return path


@pytest.fixture(scope="module")
def settings(config: Path):
    return load_settings(config)


@pytest.fixture(scope="module")
def client(settings) -> httpx.Client:
    """An open API (no token in the environment) served by uvicorn on a free port of 127.0.0.1."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(API_TOKEN_ENV, raising=False)
        with (
            api_in_background(settings, "127.0.0.1", 0) as url,
            httpx.Client(base_url=url, timeout=60) as http,
        ):
            assert url.startswith("http://127.0.0.1:")
            yield http


def _csv(response: httpx.Response) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return pd.read_csv(io.StringIO(response.text))


def test_health_and_the_stored_issues(client):
    assert client.get("/health").json() == {"status": "ok", "issues": 2, "latest_issue": "2019-03-06"}
    assert client.get("/issues").json() == {"issues": ["2019-03-05", "2019-03-06"], "latest": "2019-03-06"}


def test_the_latest_forecast_of_a_zone_as_json(client, settings):
    answer = client.get("/forecast", params={"zone": "NO1"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    body = answer.json()
    stored = read_forecast(LakeFS.of(settings), date(2019, 3, 6), ["NO1"])
    assert body["issue_date"] == "2019-03-06" and body["issued_at"] == "2019-03-06T13:30:00Z"
    assert body["model_id"] == stored["model_id"].iloc[0] and body["unit"] == "EUR/MWh"
    assert body["zones"] == ["NO1"] and len(body["rows"]) == HORIZON_HOURS
    first = body["rows"][0]
    assert first["zone"] == "NO1" and first["horizon_hour"] == 1
    assert first["delivery_hour"] == "2019-03-07T23:00:00Z" and first["local_time"] == "2019-03-08T00:00+0100"
    p50 = np.array([row["p50"] for row in body["rows"]])
    np.testing.assert_allclose(p50, stored["p50"].to_numpy(), atol=1e-4)


@pytest.mark.parametrize(
    ("as_of", "issue_date"),
    [
        ("2019-03-05", "2019-03-05"),  # an issue date
        ("2019-03-05T13:30Z", "2019-03-05"),  # an instant: its local (Oslo) date
        ("2019-03-05T23:30:00+00:00", "2019-03-06"),  # 00:30 in Oslo on the 6th
        ("2019-03-06T00:30+01:00", "2019-03-06"),
    ],
)
def test_an_as_of_forecast_is_the_issue_of_its_local_date(client, as_of, issue_date):
    body = client.get("/forecast", params={"as_of": as_of}).json()
    assert body["issue_date"] == issue_date and body["zones"] == ["NO1", "NO2"]
    assert len(body["rows"]) == 2 * HORIZON_HOURS


def test_the_forecast_as_csv_by_parameter_or_accept_header(client):
    by_parameter = _csv(
        client.get("/forecast", params={"zone": ["NO2"], "as_of": "2019-03-05", "format": "csv"})
    )
    assert list(by_parameter.columns) == FORECAST_COLUMNS and len(by_parameter) == HORIZON_HOURS
    assert set(by_parameter["zone"]) == {"NO2"} and set(by_parameter["issued_at"]) == {"2019-03-05T13:30:00Z"}
    by_header = _csv(client.get("/forecast", params={"as_of": "2019-03-05"}, headers={"Accept": "text/csv"}))
    assert len(by_header) == 2 * HORIZON_HOURS
    pd.testing.assert_frame_equal(by_header[by_header["zone"] == "NO2"].reset_index(drop=True), by_parameter)
    json_first = client.get("/forecast", headers={"Accept": "text/csv;q=0.5, application/json"})
    assert json_first.headers["content-type"] == "application/json"


def test_products_with_the_forward_view_of_an_issue(client, settings):
    body = client.get("/products", params={"zone": "NO1", "as_of": "2019-03-05", "kind": "week"}).json()
    assert body["issue_date"] == "2019-03-05" and body["unit"] == "EUR/MWh" and body["above"] is None
    rows = {row["product"]: row for row in body["rows"]}
    assert {row["kind"] for row in body["rows"]} == {"week"} and {row["zone"] for row in body["rows"]} == {
        "NO1"
    }
    week = rows["2019-W11 base"]  # the forward landed after the issue, but settled before it
    assert week["forward"] == 45.5 and week["trade_date"] == "2019-03-04"
    assert week["delivery_start"] == "2019-03-11" and week["delivery_end"] == "2019-03-17"
    assert week["premium"] == pytest.approx(45.5 - week["mean"], abs=2e-4)
    assert rows["2019-W11 peak"]["forward"] is None  # no forward for peak

    stored = read_product_forecast(LakeFS.of(settings), date(2019, 3, 5), ["NO1"])
    table = _csv(
        client.get("/products", params={"zone": "NO1", "as_of": "2019-03-05", "above": 45, "format": "csv"})
    )
    assert len(table) == len(stored.table) and "p_settle_above" in table.columns
    expected = (stored.samples > 45).mean(axis=1)
    np.testing.assert_allclose(table["p_settle_above"].to_numpy(), expected, atol=1e-4)


def test_the_track_record_scores_of_the_issues_model(client):
    body = client.get("/scores", params={"as_of": "2019-03-05"}).json()
    assert body["issue_date"] == "2019-03-05" and body["delivered_issues"] > 0
    overall = {row["model"]: row for row in body["rows"] if row["horizon_week"] == "all"}
    assert set(overall) == {"model, raw deciles", "seasonal_naive"}
    assert overall["seasonal_naive"]["rmae"] == 1.0 and overall["model, raw deciles"]["crps"] > 0
    table = _csv(client.get("/scores", params={"as_of": "2019-03-05", "format": "csv"}))
    assert len(table) == len(body["rows"]) and {"rmae", "crps", "coverage_10_90", "issues"} <= set(
        table.columns
    )


def test_the_lineage_of_an_issue(client, settings):
    from forecasting.model.registry import list_runs

    body = client.get("/lineage", params={"zone": "NO2", "as_of": "2019-03-05"}).json()
    run = list_runs(LakeFS.of(settings)).iloc[-1]
    assert body["zone"] == "NO2" and body["issued_at"] == "2019-03-05T13:30:00Z"
    assert body["model_id"] == run["model_id"]
    [made_by] = body["runs"]
    assert made_by["run_id"] == run["run_id"] and made_by["data_hash"] == run["data_hash"]
    assert isinstance(made_by["params"], dict) and "config" not in made_by
    assert {row["series"] for row in body["pulls"]} >= {"price_da"}
    assert all(row["feed"] == "replay" for row in body["pulls"]) and body["inputs"]


def test_the_feed_status(client, settings):
    body = client.get("/status").json()
    assert body["lake"] == settings.lake_root and body["unreadable"] == []
    prices = [row for row in body["series"] if row["series"] == "price_da"]
    assert {row["zone"] for row in prices} == {"NO1", "NO2"} and all(row["rows"] > 0 for row in prices)
    latest = body["latest_issue"]
    assert latest["issue_date"] == "2019-03-06" and {row["zone"] for row in latest["inputs"]} == {
        "NO1",
        "NO2",
    }
    assert {"feed_status", "newest_published_hour"} <= set(latest["inputs"][0])
    table = _csv(client.get("/status", params={"zone": "NO2", "format": "csv"}))
    assert set(table["zone"]) == {"NO2"} and list(table.columns) == [
        "zone",
        "series",
        "rows",
        "first_hour",
        "newest_hour",
    ]


@pytest.mark.parametrize(
    ("path", "params", "status", "reason"),
    [
        ("/forecast", {"zone": "SE3"}, 404, "unknown zone SE3: the configured zones are NO1, NO2"),
        ("/forecast", {"as_of": "2019-02-30"}, 422, "as_of: not an ISO date"),
        ("/forecast", {"as_of": "yesterday"}, 422, "as_of: not an ISO date"),
        (
            "/forecast",
            {"as_of": "2019-03-04"},
            404,
            "no forecast issued on 2019-03-04 is stored; stored issues: 2019-03-05, 2019-03-06",
        ),
        ("/forecast", {"as_of": "2019-03-07T12:00Z"}, 404, "stored issues: 2019-03-05, 2019-03-06"),
        ("/forecast", {"format": "xlsx"}, 422, "format: json or csv, not 'xlsx'"),
        ("/products", {"kind": "quarter"}, 422, "kind: unknown quarter"),
        ("/products", {"above": "lots"}, 422, "above: "),
        ("/scores", {"as_of": "2019-03-01"}, 404, "no forecast issued on 2019-03-01"),
        ("/lineage", {}, 422, "zone: "),
        ("/lineage", {"zone": "NO9"}, 404, "unknown zone NO9"),
        ("/status", {"zone": "XX"}, 404, "unknown zone XX"),
    ],
)
def test_bad_parameters_get_a_4xx_with_a_one_line_reason(client, path, params, status, reason):
    answer = client.get(path, params=params)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and reason in detail


def test_the_openapi_description_and_docs(client):
    described = client.get("/openapi.json").json()
    assert {"/health", "/issues", "/forecast", "/products", "/scores", "/lineage", "/status"} <= set(
        described["paths"]
    )
    forecast = described["paths"]["/forecast"]["get"]
    assert {"200", "404", "422"} <= set(forecast["responses"]) and "text/csv" in forecast["responses"]["200"][
        "content"
    ]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# --- A lake being written ---------------------------------------------------------------------


class PausedWrite:
    """`write_forecast` in a thread, held right after the rename of its first file that lands in
    `folder` (the files of one write are renamed one after the other): the lake as a reader meets it
    mid-write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
        self.paused, self.go = threading.Event(), threading.Event()
        rename = os.replace

        def replace(source: str, target: str) -> None:
            rename(source, target)
            if str(target).startswith(folder) and not self.paused.is_set():
                self.paused.set()
                assert self.go.wait(60)

        monkeypatch.setattr(os, "replace", replace)
        self.thread: threading.Thread | None = None

    def start(self, *args: object) -> None:
        self.thread = threading.Thread(target=write_forecast, args=args)
        self.thread.start()
        assert self.paused.wait(60)

    def finish(self) -> None:
        self.go.set()
        assert self.thread is not None
        self.thread.join(60)


def _issue(lake: LakeFS, issue_date: date, issued_at: pd.Timestamp):
    """The stored issue of `issue_date` relabelled as issued at `issued_at` (hourly view, inputs, paths, products)."""
    forecast = read_forecast(lake, issue_date).assign(issued_at=issued_at)
    inputs = read_forecast_inputs(lake, issue_date).assign(issued_at=issued_at)
    paths = read_paths(lake, issue_date)
    products = read_product_forecast(lake, issue_date)
    products = type(products)(products.table.assign(issued_at=issued_at), products.samples)
    return forecast, inputs, paths, products


def test_an_issue_being_written_is_never_served_half(settings, tmp_path, monkeypatch):
    lake_copy = tmp_path / "lake"
    shutil.copytree(settings.lake_root, lake_copy)
    copy = settings.model_copy(update={"lake_root": str(lake_copy)})
    lake = LakeFS.of(copy)
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    monkeypatch.setattr(api, "READ_WAIT_S", 0.01)
    new_instant = pd.Timestamp("2019-03-07 13:30", tz="UTC")
    with api_in_background(copy, "127.0.0.1", 0) as url, httpx.Client(base_url=url, timeout=60) as http:
        # A first write of 2019-03-07: its NO1 file is in place, its NO2 file and inputs are not yet.
        first_write = PausedWrite(monkeypatch, lake.path("forecasts", "issue_date=2019-03-07"))
        forecast, inputs, paths, products = _issue(lake, date(2019, 3, 6), new_instant)
        first_write.start(lake, forecast, inputs, date(2019, 3, 7), paths, products)
        assert (lake_copy / "forecasts" / "issue_date=2019-03-07" / "zone=NO1" / "data.parquet").exists()
        assert http.get("/issues").json()["issues"] == ["2019-03-05", "2019-03-06"]
        assert http.get("/forecast").json()["issue_date"] == "2019-03-06"
        missing = http.get("/forecast", params={"as_of": "2019-03-07"})
        assert (
            missing.status_code == 404 and "stored issues: 2019-03-05, 2019-03-06" in missing.json()["detail"]
        )
        assert http.get("/health").json()["latest_issue"] == "2019-03-06"
        first_write.finish()
        assert http.get("/forecast").json()["issued_at"] == "2019-03-07T13:30:00Z"

        # A re-issue of 2019-03-06 an hour later: NO1 replaced, NO2 and the inputs still the old write's.
        later = pd.Timestamp("2019-03-06 14:30", tz="UTC")
        rewrite = PausedWrite(monkeypatch, lake.path("forecasts", "issue_date=2019-03-06"))
        forecast, inputs, paths, products = _issue(lake, date(2019, 3, 6), later)
        rewrite.start(lake, forecast, inputs, date(2019, 3, 6), paths, products)
        for zone in ("NO1", "NO2"):
            mixed = http.get("/forecast", params={"as_of": "2019-03-06", "zone": zone})
            assert mixed.status_code == 503 and mixed.headers["retry-after"]
            assert (
                mixed.json()["detail"] == "the issue of 2019-03-06 is being rewritten: retry in a few seconds"
            )
        assert http.get("/products", params={"as_of": "2019-03-06"}).status_code == 503
        assert http.get("/forecast", params={"as_of": "2019-03-05"}).status_code == 200  # others unaffected
        rewrite.finish()
        whole = http.get("/forecast", params={"as_of": "2019-03-06", "format": "csv"})
        assert set(_csv(whole)["issued_at"]) == {"2019-03-06T14:30:00Z"}
        products_now = http.get("/products", params={"as_of": "2019-03-06"}).json()
        assert products_now["issued_at"] == "2019-03-06T14:30:00Z"


def test_the_feed_status_follows_what_lands(settings, tmp_path, monkeypatch):
    """The lake scan is kept between requests until a curated file changes: the next day's landing shows."""
    from forecasting.jobs import ingest

    shutil.copytree(settings.lake_root, tmp_path / "lake")
    copy = settings.model_copy(update={"lake_root": str(tmp_path / "lake")})
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)

    def newest_price(http: httpx.Client) -> str:
        rows = http.get("/status", params={"zone": "NO1"}).json()["series"]
        return next(row["newest_hour"] for row in rows if row["series"] == "price_da")

    with api_in_background(copy, "127.0.0.1", 0) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert newest_price(http) == newest_price(http) == "2019-03-07T22:00:00Z"
        assert ingest.backfill(copy, as_of=pd.Timestamp("2019-03-07 13:30", tz="UTC")).ok
        assert newest_price(http) == "2019-03-08T22:00:00Z"


# --- `spotcast api`, the token, `spotcast serve` ------------------------------------------------


def _lines(stream: io.TextIOBase, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_spotcast_api_binds_loopback_and_asks_for_the_token_in_constant_time(config, tmp_path):
    env = {**os.environ, API_TOKEN_ENV: TOKEN}
    command = [sys.executable, "-m", "forecasting.cli", "-v", "api", "--config", str(config), "--port", "0"]
    server = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(server.stderr, lines), daemon=True).start()
    seen: list[str] = []
    try:
        while not any("HTTP API at http://" in line for line in seen):
            seen.append(lines.get(timeout=120))
        url = next(line for line in seen if "HTTP API at" in line).split("HTTP API at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        with httpx.Client(base_url=url, timeout=60) as http:
            missing = http.get("/forecast", params={"zone": "NO1"})
            assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
            assert "Authorization: Bearer <token>" in missing.json()["detail"]
            wrong = http.get("/scores", headers={"Authorization": f"Bearer {TOKEN}x"})
            assert wrong.status_code == 401 and wrong.json() == {"detail": "wrong bearer token"}
            not_bearer = http.get("/scores", headers={"Authorization": f"Basic {TOKEN}"})
            assert not_bearer.status_code == 401
            good = {"Authorization": f"Bearer {TOKEN}"}
            for path in ("/issues", "/forecast", "/products", "/scores", "/status", "/lineage?zone=NO1"):
                assert http.get(path, headers=good).status_code == 200, path
            assert http.get("/health").status_code == 200  # a monitor needs no token
            assert http.get("/docs").status_code == 200 and http.get("/openapi.json").status_code == 200
            schemes = http.get("/openapi.json").json()["components"]["securitySchemes"]
            assert [scheme["scheme"] for scheme in schemes.values()] == ["bearer"]
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == EXIT_OK  # a graceful stop, as `serve`
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    while not lines.empty():
        seen.append(lines.get())
    log = "".join(seen)
    assert "GET /forecast" in log and "HTTP API stopped" in log  # -v: the access log
    assert TOKEN not in log and TOKEN not in server.stdout.read()


def test_a_blank_token_or_a_taken_port_is_one_line(config, monkeypatch, capsys):
    monkeypatch.setenv(API_TOKEN_ENV, "  ")
    assert main(["api", "--config", str(config), "--port", "0"]) == EXIT_USAGE
    assert capsys.readouterr().err.strip() == (
        f"spotcast: {API_TOKEN_ENV} is set but empty: set a token, or unset it for an open API"
    )
    monkeypatch.delenv(API_TOKEN_ENV)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["api", "--config", str(config), "--port", str(port)]) == EXIT_ERROR
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"spotcast: the API cannot listen on 127.0.0.1:{port}: ")


def test_spotcast_serve_runs_the_api_beside_it_unless_told_not_to(config, monkeypatch, tmp_path):
    import flows.serve

    monkeypatch.setenv("PREFECT_HOME", str(prefect_home(tmp_path / "prefect")))
    monkeypatch.delenv(API_TOKEN_ENV, raising=False)
    port = _free_port()
    answers: list[int | str] = []

    def serve(**_: object) -> None:  # stands in for Prefect's runner: the API answers meanwhile
        try:
            answers.append(httpx.get(f"http://127.0.0.1:{port}/health", timeout=30).status_code)
        except httpx.ConnectError:
            answers.append("refused")

    monkeypatch.setattr(flows.serve, "serve", serve)
    assert main(["serve", "--config", str(config), "--api-port", str(port)]) == EXIT_OK
    assert main(["serve", "--config", str(config), "--api-port", str(port), "--no-api"]) == EXIT_OK
    assert answers == [200, "refused"]  # and the first one stopped with `serve`
