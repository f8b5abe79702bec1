"""Nothing of another user's changes unless they asked: where a run's files go (two checkouts sharing
one environment each write their own lake; lineage names the model artifact where it is now) and
which Prefect server a run reports to (only one it was told of: never one that merely answers on
127.0.0.1:4200)."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest
from spotcast_testing import (
    detached_env,
    dump_toml,
    issue_tiny_forecast,
    offline_env,
    prefect_home,
    tiny_config,
)

from flows.servers import SERVE_RECORD, recorded_server, serve_record
from forecasting.cli import EXIT_OK, main
from forecasting.config import DEFAULT_CONFIG, PROJECT_ROOT, load_settings
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import newest_hours
from forecasting.model import registry
from forecasting.model.registry import artifact_location

AS_OF = "2019-01-08T13:30"  # a week of NO1 from --start: seconds to pull
START = "2019-01-01"


def _spotcast(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    """`spotcast …` as a user runs it from `cwd`: the one environment's code, started elsewhere."""
    return subprocess.Popen(
        [sys.executable, "-m", "forecasting.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(process: subprocess.Popen, timeout_s: float = 600) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout_s)
    return process.returncode, out, err


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Someone else's Prefect server, as far as a client can tell before it asks for more: healthy.
    Every request it gets is recorded."""

    requests: list[str]

    def _answer(self) -> None:
        self.requests.append(f"{self.command} {self.path}")
        healthy = self.path.rstrip("/").endswith("/health")
        body = b"true" if healthy else b"{}"
        self.send_response(200 if healthy else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

    def log_message(self, *_: object) -> None:
        pass


@contextlib.contextmanager
def _recording_server(port: int) -> Iterator[tuple[str, list[str]]]:
    """A healthy stand-in server on 127.0.0.1:`port` (0: any free port): its API URL and requests."""
    requests: list[str] = []
    handler = type("Recorder", (_Recorder,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api", requests
    finally:
        server.shutdown()
        server.server_close()


def _checkout(folder: Path) -> Path:
    """A clone as a user has one: configs/spotcast.toml (history from 2018 for a quick backfill) and
    the bundled history (linked: the same files)."""
    (folder / "configs").mkdir(parents=True)
    text = DEFAULT_CONFIG.read_text().replace('start = "2015-01-01"', 'start = "2018-12-01"')
    (folder / "configs" / "spotcast.toml").write_text(text)
    (folder / "data").mkdir()
    (folder / "data" / "bundled").symlink_to(PROJECT_ROOT / "data" / "bundled")
    return folder


# --- Where files go -------------------------------------------------------------------------------


class TrainedModel:
    """What the registry records of a fitted pipeline (the attributes `record_run` reads)."""

    model_id_ = "deepar-moved"
    zones_: ClassVar[dict[str, str]] = {"NO1": "Europe/Oslo"}
    training_range_ = (pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2020-06-01", tz="UTC"))
    training_data_hash_ = "hash"

    def get_params(self) -> dict[str, object]:
        return {"max_epochs": 1}


def _record(tmp_path: Path, artifact: Path | None = None) -> tuple[LakeFS, pd.Series]:
    settings = load_settings(lake_root=str(tmp_path / "lake"), models_root=str(tmp_path / "models"))
    artifact = artifact or Path(registry.artifact_dir(settings, TrainedModel.model_id_))
    artifact.mkdir(parents=True)
    lake = LakeFS.of(settings)
    registry.record_run(
        lake, settings, TrainedModel(), artifact, {"crps": 1.0}, {}, 1.0, pd.Timestamp(AS_OF, tz="UTC")
    )
    return lake, registry.list_runs(lake).iloc[-1]


def test_a_run_records_its_artifact_relative_to_the_models_folder_and_is_found_after_a_move(tmp_path):
    _, run = _record(tmp_path)
    assert run["artifact"] == "deepar-moved"  # no absolute path of the day it was trained

    (tmp_path / "models").rename(tmp_path / "models-moved")
    moved = load_settings(lake_root=str(tmp_path / "lake"), models_root=str(tmp_path / "models-moved"))

    assert artifact_location(moved, run) == str(tmp_path / "models-moved" / "deepar-moved")
    assert Path(artifact_location(moved, run)).is_dir()


def test_an_older_record_of_an_absolute_path_names_where_the_model_is_now(tmp_path):
    lake, run = _record(tmp_path)
    legacy = run.copy()
    legacy["artifact"] = str(tmp_path / "models" / "deepar-moved")  # as runs were recorded before
    (tmp_path / "models").rename(tmp_path / "models-moved")
    moved = load_settings(lake_root=lake.root, models_root=str(tmp_path / "models-moved"))

    assert artifact_location(moved, legacy) == str(tmp_path / "models-moved" / "deepar-moved")


@pytest.mark.slow
def test_two_checkouts_sharing_one_environment_each_write_their_own_lake(tmp_path):
    """Two clones, one environment (this one's, its code installed from elsewhere): `spotcast
    backfill` without --config in each lands in that clone's data/lake, keeps its Prefect home in
    that clone, and leaves the installed code's folder alone."""
    installed_lake = _files(PROJECT_ROOT / "data" / "lake")
    clones = [_checkout(tmp_path / name) for name in ("alice", "bob")]
    args = ("backfill", "--zones", "NO1", "--start", START, "--as-of", AS_OF)
    running = [_spotcast(*args, cwd=clone, env=offline_env()) for clone in clones]
    for clone, process in zip(clones, running, strict=True):
        code, _, err = _finished(process)
        assert code == EXIT_OK, err[-3000:]
        landed = newest_hours(LakeFS.open(str(clone / "data" / "lake")))
        assert set(landed["zone"]) == {"NO1"} and "price_da" in set(landed["series"])
        assert (clone / ".prefect").is_dir()  # its run history too
    assert _files(PROJECT_ROOT / "data" / "lake") == installed_lake


@pytest.mark.slow
def test_lineage_names_the_model_artifact_where_the_models_folder_is_now(tmp_path, capsys):
    config = tiny_config(tmp_path, ["NO1"], "2018-09-01")
    issued = issue_tiny_forecast(config, pd.Timestamp("2019-03-05 13:30", tz="UTC"))
    lineage = ["lineage", str(issued.issue_date), "NO1", "--config", str(config)]
    assert main(lineage) == EXIT_OK
    [trained] = [line for line in capsys.readouterr().out.splitlines() if "artifact" in line]
    assert str(tmp_path / "models") in trained

    (tmp_path / "models").rename(tmp_path / "archive")
    raw = tomllib.loads(config.read_text())
    config.write_text(dump_toml({**raw, "models_root": str(tmp_path / "archive")}) + "\n")
    assert main(lineage) == EXIT_OK
    [moved] = [line for line in capsys.readouterr().out.splitlines() if "artifact" in line]

    model_id = issued.forecast["model_id"].iloc[0]
    assert moved.split() == ["artifact", str(tmp_path / "archive" / model_id)]  # there, not "missing"


# --- Which Prefect server a run reports to --------------------------------------------------------


def test_a_serve_record_names_its_server_for_its_own_lake_and_only_while_serve_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home(tmp_path / "home")))
    lake = str(tmp_path / "lake")
    with _recording_server(0) as (api_url, _):
        assert recorded_server(lake) is None  # no `serve` recorded one
        with serve_record(api_url, lake) as record:
            assert recorded_server(lake) == (api_url, os.getpid())
            assert recorded_server(str(tmp_path / "another-lake")) is None
            kept = record.read_text()
        assert not record.exists()  # gone when serve stops
        record.write_text(kept.replace(f'"pid": {os.getpid()}', '"pid": 999999999'))  # serve was killed
        assert recorded_server(lake) is None
        record.write_text("{not json")
        assert recorded_server(lake) is None
    assert record.name == SERVE_RECORD


@pytest.mark.slow
def test_a_server_on_port_4200_gets_nothing_from_a_command_not_pointed_at_it(tmp_path):
    """A healthy server on the default address (someone else's `spotcast serve` or `prefect server
    start`): a command told of none starts its own temporary server and sends nothing there."""
    try:
        standin = _recording_server(4200)
        address, requests = standin.__enter__()
    except OSError as exc:
        pytest.skip(f"127.0.0.1:4200 is taken ({exc}): cannot stand in for another user's server")
    try:
        config = tiny_config(tmp_path, ["NO1"], "2018-12-01")
        env = detached_env(tmp_path / "prefect")
        done = _spotcast(
            "backfill", "--config", str(config), "--start", START, "--as-of", AS_OF, cwd=tmp_path, env=env
        )
        code, _, err = _finished(done)
    finally:
        standin.__exit__(None, None, None)
    assert code == EXIT_OK, err[-3000:]
    assert "starting a temporary Prefect server" in err and address not in err
    assert requests == []


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real Prefect server (the one a command starts for itself, here this test module's)."""
    from flows.servers import start_temporary_server

    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_HOME", str(prefect_home(tmp_path_factory.mktemp("server-home"))))
        return start_temporary_server()


def _backfill_runs(api_url: str) -> list[tuple[str, str]]:
    """(state, configuration) of every flow run the server at `api_url` holds."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return [(run.state_name, str(run.parameters.get("config"))) for run in client.read_flow_runs()]


@pytest.mark.slow
def test_the_server_of_the_configuration_gets_the_run(prefect_api, tmp_path):
    before = _backfill_runs(prefect_api)
    raw = tomllib.loads(tiny_config(tmp_path, ["NO1"], "2018-12-01").read_text())
    config = tmp_path / "spotcast.toml"
    config.write_text(dump_toml({**raw, "prefect": {"api_url": prefect_api}}) + "\n")
    env = detached_env(tmp_path / "prefect")

    done = _spotcast(
        "backfill", "--config", str(config), "--start", START, "--as-of", AS_OF, cwd=tmp_path, env=env
    )
    code, _, err = _finished(done)

    assert code == EXIT_OK, err[-3000:]
    assert f"reporting to the Prefect server at {prefect_api} ([prefect] api_url)" in err
    assert [run for run in _backfill_runs(prefect_api) if run not in before] == [("Completed", str(config))]


@pytest.mark.slow
def test_the_server_serve_recorded_gets_the_runs_of_its_own_lake(prefect_api, tmp_path):
    """What `spotcast serve` records while it serves (here: this process stands in for it) is where
    a one-shot command of the same PREFECT_HOME and lake reports."""
    before = _backfill_runs(prefect_api)
    config = tiny_config(tmp_path, ["NO1"], "2018-12-01")
    home = tmp_path / "prefect"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PREFECT_HOME", str(prefect_home(home)))
        with serve_record(prefect_api, load_settings(config).lake_root):
            done = _spotcast(
                "backfill",
                "--config",
                str(config),
                "--start",
                START,
                "--as-of",
                AS_OF,
                cwd=tmp_path,
                env=offline_env(PREFECT_HOME=str(home)),
            )
            code, _, err = _finished(done)

    assert code == EXIT_OK, err[-3000:]
    assert (
        f"reporting to the Prefect server at {prefect_api}, which `spotcast serve` (pid {os.getpid()}) runs"
        in err
    )
    assert [run for run in _backfill_runs(prefect_api) if run not in before] == [("Completed", str(config))]
    assert not (home / SERVE_RECORD).exists()
