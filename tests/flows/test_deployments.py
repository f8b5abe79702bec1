"""prefect.yaml against the code: every deployment's entrypoint is a flow that takes the parameters the
deployment gives it; the heavy deployments (`tune`, `backtest`) run their flow on a Dask cluster, start
where the Containerfile puts the project, and — slow — deploy with `prefect deploy --all` and run a
backtest on a process worker of their own pool, fanned out on a LocalCluster whose task runs reach the
server.

Everything stays on 127.0.0.1 with telemetry off (the helpers of test_serve.py)."""

from __future__ import annotations

import contextlib
import inspect
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml
from prefect import Flow
from spotcast_testing import tiny_config
from test_serve import kill_tree, own_prefect_server, prefect_env, tail

from flows.heavy import backtest_on_cluster, tune_on_cluster
from flows.modelling import backtest_flow
from flows.tune import tune_flow
from forecasting.config import PROJECT_ROOT, load_settings

HEAVY_POOL = "spotcast-heavy"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def deployments() -> dict[str, dict]:
    return {d["name"]: d for d in yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]}


def load_entrypoint(entrypoint: str) -> Flow:
    """The flow of `entrypoint`, loaded as a worker's flow-run process loads it: from the file, in the
    directory the run starts in (the project)."""
    from prefect.utilities.importtools import import_object

    with contextlib.chdir(PROJECT_ROOT):
        return import_object(entrypoint)


def parameters(flow: Flow) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(flow.fn).parameters)


def pinned_torch() -> str:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    [pin] = [d for d in pyproject["project"]["dependencies"] if d.startswith("torch")]
    return pin


# --- fast: the file against the code ---------------------------------------------------------------


def test_prefect_yaml_has_the_daily_backfill_tune_and_backtest_deployments() -> None:
    assert list(deployments()) == ["daily", "backfill", "tune", "backtest"]


@pytest.mark.parametrize("name", list(deployments()))
def test_each_entrypoint_is_a_flow_that_takes_the_deployments_parameters(name: str) -> None:
    from prefect.utilities.callables import parameter_schema

    deployment = deployments()[name]
    flow = load_entrypoint(deployment["entrypoint"])
    assert isinstance(flow, Flow), f"{deployment['entrypoint']} is not a flow"
    signature = parameters(flow)
    given = deployment.get("parameters") or {}
    assert set(given) <= set(signature), (
        f"{name}: {set(given) - set(signature)} are not parameters of {flow.name}"
    )
    # What `prefect deploy` builds from the signature: every parameter has a JSON schema.
    schema = parameter_schema(flow)
    assert set(schema.properties) == set(signature)
    # A parameter without a default must come with each run; none is left for the deployment to fill.
    required = {p for p, spec in signature.items() if spec.default is inspect.Parameter.empty}
    assert set(schema.required or []) == required
    assert deployment["work_pool"]["name"] in {"spotcast", HEAVY_POOL}


def test_the_heavy_deployments_run_the_flows_behind_spotcast_tune_and_backtest() -> None:
    """A deployment cannot set its flow's task runner: the heavy entrypoints take the cluster as
    parameters and pass every parameter of the flow they run through."""
    for wrapper, inner in ((tune_on_cluster, tune_flow), (backtest_on_cluster, backtest_flow)):
        outer = parameters(wrapper)
        assert set(parameters(inner)) <= set(outer), wrapper.name
        assert {"workers", "dask_address"} <= set(outer), wrapper.name
    for name in ("tune", "backtest"):
        deployment = deployments()[name]
        assert deployment["work_pool"]["name"] == HEAVY_POOL
        loaded = load_entrypoint(deployment["entrypoint"])
        wrapper = {"tune": tune_on_cluster, "backtest": backtest_on_cluster}[name]
        assert (loaded.name, loaded.fn.__code__.co_filename) == (
            f"{name}-on-cluster",
            wrapper.fn.__code__.co_filename,
        )
    assert deployments()["tune"]["concurrency_limit"] == 1  # one run per study at a time


def test_a_backtest_without_origins_fails_before_anything_starts(tmp_path: Path) -> None:
    from forecasting.errors import UsageError

    with pytest.raises(UsageError, match="not after start"):
        backtest_on_cluster.fn(start=pd.Timestamp("2019-02-11").date(), end=pd.Timestamp("2019-02-04").date())


def test_the_heavy_deployments_start_where_the_containerfile_puts_the_project() -> None:
    containerfile = (PROJECT_ROOT / "Containerfile").read_text()
    [workdir] = re.findall(r"^WORKDIR (\S+)$", containerfile, flags=re.MULTILINE)
    for name in ("tune", "backtest"):
        [step] = deployments()[name]["pull"]
        assert step == {"prefect.deployments.steps.set_working_directory": {"directory": workdir}}
    assert f'CMD ["prefect", "worker", "start", "--pool", "{HEAVY_POOL}", "--limit", "1"]' in containerfile
    # torch first, at the pin of pyproject.toml, from the CPU index; then the project.
    torch_line = f"pip install --no-cache-dir {pinned_torch()} --index-url {CPU_INDEX}"
    assert torch_line in containerfile
    assert containerfile.index(torch_line) < containerfile.index("pip install --no-cache-dir .")


def test_the_worker_install_lines_in_the_docs_pin_torch_from_the_cpu_index() -> None:
    operations = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    torch_line = f".venv/bin/pip install {pinned_torch()} --index-url {CPU_INDEX}"
    assert torch_line in operations
    assert operations.index(torch_line) < operations.index(".venv/bin/pip install .\n")
    assert "cd /opt/spotcast" in operations


# --- slow: deployed and run on a worker of the heavy pool -----------------------------------------


@pytest.mark.slow
def test_the_backtest_deployment_fans_out_on_a_local_cluster_of_a_heavy_worker(tmp_path: Path) -> None:
    """`prefect deploy --all`, then a process worker of `spotcast-heavy` runs the backtest deployment
    with `workers = 2`: the backtest is a sub-flow run on a LocalCluster whose workers report their
    task runs to the same server, and the results land in the lake."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId, TaskRunFilter
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from forecasting.jobs import ingest

    config = tiny_config(tmp_path, ["NO1"], "2018-06-01")
    assert ingest.backfill(load_settings(config), as_of=pd.Timestamp("2019-03-15 13:30", tz="UTC")).ok
    # The heavy deployments start in /opt/spotcast (the Containerfile's); here, in this checkout.
    text = (
        (PROJECT_ROOT / "prefect.yaml")
        .read_text()
        .replace("directory: /opt/spotcast", f"directory: {PROJECT_ROOT}")
    )
    prefect_file = tmp_path / "prefect.yaml"
    prefect_file.write_text(text)

    home = tmp_path / "server-home"
    home.mkdir()
    with own_prefect_server(home) as api_url:
        env = prefect_env(tmp_path / "home", api_url)
        prefect = [sys.executable, "-m", "prefect"]

        def cli(*args: str) -> str:
            done = subprocess.run(
                [*prefect, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180
            )
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        for pool in ("spotcast", HEAVY_POOL):
            cli("work-pool", "create", pool, "--type", "process")
        cli("work-pool", "set-concurrency-limit", HEAVY_POOL, "1")
        cli("--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file))
        worker_log = tmp_path / "worker.log"
        with worker_log.open("ab") as out:
            worker = subprocess.Popen(
                [*prefect, "worker", "start", "--pool", HEAVY_POOL, "--limit", "1"],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            with (
                temporary_settings(updates={PREFECT_API_URL: api_url}),
                get_client(sync_client=True) as client,
            ):
                tune = client.read_deployment_by_name("tune-on-cluster/tune")
                assert tune.work_pool_name == HEAVY_POOL and tune.global_concurrency_limit.limit == 1
                assert tune.pull_steps == [
                    {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}
                ]
                parameters = {"config": str(config), "start": "2019-02-04", "end": "2019-02-12", "workers": 2}
                flow_run = run_deployment(
                    "backtest-on-cluster/backtest", parameters=parameters, timeout=0, as_subflow=False
                )
                deadline = time.monotonic() + 420
                while not (flow_run.state and flow_run.state.is_final()):
                    assert worker.poll() is None and time.monotonic() < deadline, tail(worker_log, 120)
                    time.sleep(2)
                    flow_run = client.read_flow_run(flow_run.id)
                assert flow_run.state.is_completed(), tail(worker_log, 120)
                [child] = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(
                        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id])
                    )
                )
                assert client.read_flow(child.flow_id).name == "backtest" and child.state.is_completed()
                task_runs = client.read_task_runs(task_run_filter=TaskRunFilter())
        finally:
            kill_tree(worker, grace_s=10)
    fanned = [t for t in task_runs if t.flow_run_id == child.id]  # fits and origins, on the cluster
    assert len(fanned) >= 2 and all(t.state.is_completed() for t in fanned), [
        (t.name, t.state_name) for t in task_runs
    ]
    assert (tmp_path / "lake" / "backtests" / "forecasts").is_dir()
