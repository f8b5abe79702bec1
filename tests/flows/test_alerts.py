"""`flows.alerts`: the daily run's alerts as Prefect automations, built from [alerts]; and — slow — the
real thing: a Prefect server on a free loopback port (running its triggers and actions services, as
`prefect server start` does), `serve()` in a subprocess with a webhook receiver on 127.0.0.1, a good
daily run that sends nothing, and a forced failure that sends exactly one notification naming the
run, the failing step and the one-line reason; a run not finished by the deadline sends one; set-up
again (`spotcast alerts`) updates, never duplicates (last: the CLI installs its console logging in
this process).

Everything stays on 127.0.0.1 with telemetry off; PREFECT_HOME of the server and serve is under tmp;
every subprocess is killed in the fixtures' teardown.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from uuid import uuid4

import pandas as pd
import pytest
from prefect.events.schemas.automations import Posture
from spotcast_testing import tiny_config
from test_serve import (
    AS_OF,
    HISTORY_START,
    RUN_TIMEOUT_S,
    ZONES,
    kill_tree,
    own_prefect_server,
    prefect_env,
    start_serve,
    tail,
    wait_for_deployments,
)

from flows.alerts import (
    BLOCK_NAME,
    FAILED,
    FAILURE_EVENTS,
    LATE,
    WEBHOOK_ENV,
    alert_automations,
    late_after,
    set_up_alerts,
    webhook_url,
)
from flows.daily import one_line_reason, step_failed
from flows.serve import DAILY
from forecasting.config import ConfigError, load_settings
from forecasting.errors import MissingData

NOTIFY_TIMEOUT_S = 60.0
QUIET_S = 8.0  # after the one notification expected: time a duplicate would have had to arrive


def _settings(**alerts: object):
    return load_settings(alerts={"enabled": True, "deadline": "16:00", **alerts})


# --- quick tests --------------------------------------------------------------------------------


def test_automations_watch_the_daily_deployments_runs_and_notify_through_the_block() -> None:
    deployment, block = uuid4(), uuid4()
    failed, late = alert_automations(_settings(), deployment, block)

    assert (failed.name, late.name) == (FAILED, LATE)
    for automation in (failed, late):
        trigger = automation.trigger
        assert trigger.match_related.model_dump() == {
            "prefect.resource.id": f"prefect.deployment.{deployment}",
            "prefect.resource.role": "deployment",
        }
        assert trigger.for_each == {"prefect.resource.id"}  # each run alerts on its own
        [action] = automation.actions
        assert action.block_document_id == block and "{{ flow_run.name }}" in action.subject
        assert automation.owner_resource is None  # Prefect deletes a deployment's own ones on apply
    assert failed.trigger.posture == Posture.Reactive
    assert failed.trigger.expect == set(FAILURE_EVENTS) and failed.trigger.threshold == 1
    assert "{{ flow_run.state.message or 'no message' }}" in failed.actions[0].body
    assert late.trigger.posture == Posture.Proactive
    assert late.trigger.after == {"prefect.flow-run.Pending", "prefect.flow-run.Late"}
    assert "prefect.flow-run.Completed" in late.trigger.expect
    assert "prefect.flow-run.Cancelled" not in late.trigger.expect  # a cancelled run did not finish
    assert late.trigger.within == timedelta(hours=2)  # 14:00 → 16:00 Oslo
    assert "not finished by 16:00 Europe/Oslo" in late.actions[0].subject


@pytest.mark.parametrize(
    ("deadline", "expected"),
    [
        ("16:00", timedelta(hours=2)),
        ("01:30", timedelta(hours=11, minutes=30)),
        ("14:00:10", timedelta(seconds=10)),
    ],
)
def test_the_deadline_is_measured_from_the_schedule(deadline: str, expected: timedelta) -> None:
    assert late_after(_settings(deadline=deadline)) == expected


def test_a_deadline_at_the_start_itself_is_refused_and_none_means_no_late_alert() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.deadline = 14:00:00 is \[schedule\] daily_at"):
        late_after(_settings(deadline="14:00"))
    settings = _settings(deadline=None)
    assert late_after(settings) is None
    assert [a.name for a in alert_automations(settings, uuid4(), uuid4())] == [FAILED]


def test_the_webhook_url_comes_from_the_environment_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    assert webhook_url(_settings()) is None
    assert webhook_url(_settings(webhook_url="https://hooks.example.com/a")) == "https://hooks.example.com/a"
    monkeypatch.setenv(WEBHOOK_ENV, "https://hooks.example.com/b")
    assert webhook_url(_settings(webhook_url="https://hooks.example.com/a")) == "https://hooks.example.com/b"


def test_a_failed_step_ends_the_run_failed_naming_the_step_and_the_one_line_reason() -> None:
    error = MissingData("no forecast issued on 2019-03-05\nsecond line")
    state = step_failed("forecast", error)

    assert state.is_failed()
    assert state.message == "step 'forecast' failed: MissingData: no forecast issued on 2019-03-05"
    assert state.data is error  # `spotcast daily` raises it, as before
    assert one_line_reason(ValueError()) == "ValueError"


# --- slow: a real server, serve, a webhook receiver -----------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1: records each POST (path, headers, JSON body)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/spotcast-alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def wait_for(self, count: int, timeout_s: float = NOTIFY_TIMEOUT_S) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while len(self.posts) < count and time.monotonic() < deadline:
            time.sleep(0.5)
        return list(self.posts)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()


@pytest.fixture(scope="module")
def alerting(
    receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, Path]]:
    """A server of its own and `serve(config, start_server=False)` pointed at it, the webhook URL in
    serve's environment: yields (API URL, configuration, serve's log)."""
    home = tmp_path_factory.mktemp("alerts-server-home")
    config = tiny_config(tmp_path_factory.mktemp("alerts-spotcast"), ZONES, HISTORY_START)
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")  # the server's notifications go straight there
        api_url = stack.enter_context(own_prefect_server(home))
        serve_home = tmp_path_factory.mktemp("alerts-serve-home")
        log = serve_home / "serve.log"
        env = {**prefect_env(serve_home, api_url), WEBHOOK_ENV: receiver.url}
        command = f"from flows.serve import serve; serve(config={str(config)!r}, start_server=False)"
        process = start_serve(command, env, log)
        stack.callback(kill_tree, process)
        wait_for_deployments(api_url, process, log, timeout_s=180)
        yield api_url, config, log


def _run_daily(api_url: str, log: Path, as_of: str):
    """A run of the served daily deployment, to its final state."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        flow_run = run_deployment(
            f"{DAILY}/{DAILY}", parameters={"as_of": as_of, "zones": ZONES}, timeout=0, as_subflow=False
        )
        deadline = time.monotonic() + RUN_TIMEOUT_S
        with get_client(sync_client=True) as client:
            while not (flow_run.state and flow_run.state.is_final()):
                assert time.monotonic() < deadline, f"still {flow_run.state_name}:\n{tail(log)}"
                time.sleep(2)
                flow_run = client.read_flow_run(flow_run.id)
    return flow_run


@pytest.mark.slow
def test_a_failed_daily_run_sends_one_notification_naming_run_step_and_reason_a_good_one_none(
    alerting: tuple[str, Path, Path], receiver: Receiver
) -> None:
    api_url, _, log = alerting
    assert "alerts: spotcast: daily run failed, spotcast: daily run late" in log.read_text()

    good = _run_daily(api_url, log, AS_OF)  # backfills, trains and forecasts: the first champion
    assert good.state.is_completed(), f"{good.state}:\n{tail(log, 120)}"

    # A day earlier, no model was champion yet: the "load champion" step fails (NoChampion).
    earlier = (pd.Timestamp(AS_OF) - pd.Timedelta(days=1)).isoformat()
    failed = _run_daily(api_url, log, earlier)
    assert failed.state.is_failed(), f"{failed.state}:\n{tail(log, 120)}"
    assert failed.state.message.startswith("step 'load champion' failed: NoChampion: no model was champion")

    [post] = receiver.wait_for(1)
    time.sleep(QUIET_S)  # the good run's events came first; a duplicate would come now
    assert receiver.posts == [post], [p["json"]["subject"] for p in receiver.posts]
    message = post["json"]
    print("received notification:", json.dumps(post, indent=2))  # shown with -s
    assert post["path"] == "/spotcast-alerts" and post["headers"]["Content-Type"] == "application/json"
    assert message["subject"] == f"Spotcast daily run {failed.name}: Failed"
    first_line = message["body"].splitlines()[0]
    assert first_line == f"The daily run {failed.name} of Spotcast ended Failed: {failed.state.message}"
    assert (
        "step 'load champion' failed: NoChampion: no model was champion at 2019-03-04 13:30 UTC" in first_line
    )
    assert good.name not in message["text"] and str(failed.id) in message["body"]
    assert message["text"] == f"{message['subject']}\n{message['body']}"


@pytest.mark.slow
def test_a_run_not_finished_by_the_deadline_sends_one_notification(
    alerting: tuple[str, Path, Path], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline 10 s after daily_at: a run of the daily deployment that went Pending (its process
    never started) gets one "not finished" notification; one that completed in time gets none."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Completed, Pending, Running, Scheduled

    api_url, config, _ = alerting
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    settings = load_settings(config)
    start = settings.schedule.daily_at
    deadline = (datetime.combine(datetime(2000, 1, 1), start) + timedelta(seconds=10)).time()
    settings = settings.model_copy(
        update={"alerts": settings.alerts.model_copy(update={"deadline": deadline})}
    )
    seen = len(receiver.posts)
    later = Scheduled(scheduled_time=datetime.now(UTC) + timedelta(days=30))  # the runner leaves it
    with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        daily = client.read_deployment_by_name(f"{DAILY}/{DAILY}")
        set_up_alerts(settings, daily.id)
        stuck = client.create_flow_run_from_deployment(daily.id, state=later)
        in_time = client.create_flow_run_from_deployment(daily.id, state=later)
        for run, states in ((stuck, [Pending()]), (in_time, [Pending(), Running(), Completed()])):
            for state in states:
                client.set_flow_run_state(run.id, state, force=True)
        try:
            posts = receiver.wait_for(seen + 1, timeout_s=10 + NOTIFY_TIMEOUT_S)[seen:]
            time.sleep(QUIET_S)
        finally:
            set_up_alerts(load_settings(config), daily.id)  # the configured deadline again
            client.set_flow_run_state(stuck.id, Completed(), force=True)
    assert receiver.posts[seen:] == posts and len(posts) == 1, [p["json"]["subject"] for p in posts]
    message = posts[0]["json"]
    assert (
        message["subject"]
        == f"Spotcast daily run {stuck.name}: not finished by {deadline:%H:%M:%S} Europe/Oslo"
    )
    assert message["body"].startswith(
        f"The daily run {stuck.name} of Spotcast has not finished by {deadline:%H:%M:%S} Europe/Oslo: it is "
        "Pending."
    )


@pytest.mark.slow
def test_setting_the_alerts_up_again_updates_them_and_alerts_off_removes_them(
    alerting: tuple[str, Path, Path], receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`spotcast alerts` against the served deployment: the same block and automations, updated in
    place (no duplicate); with [alerts] enabled = false they are removed, and come back; a block of
    one's own is used when named, and a missing or non-notification one refused in one line."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.blocks.system import Secret
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from forecasting.cli import EXIT_OK, main

    api_url, config, _ = alerting
    monkeypatch.setenv("PREFECT_API_URL", api_url)
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)

    def daily_id():
        with get_client(sync_client=True) as client:
            return client.read_deployment_by_name(f"{DAILY}/{DAILY}").id

    def on_server() -> tuple[dict[str, list], int]:
        with get_client(sync_client=True) as client:
            automations = {name: client.read_automations_by_name(name) for name in (FAILED, LATE)}
            blocks = [b for b in client.read_block_documents(include_secrets=False) if b.name == BLOCK_NAME]
        return {name: [a.id for a in found] for name, found in automations.items()}, len(blocks)

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        before, blocks = on_server()
        assert main(["alerts", "--config", str(config)]) == EXIT_OK
        assert f"alerts on {api_url}: {FAILED}, {LATE}" in capsys.readouterr().out
        after, blocks_after = on_server()
        assert after == before and blocks == blocks_after == 1
        assert all(len(ids) == 1 for ids in after.values())

        (config.parent / "off").mkdir(exist_ok=True)
        off = tiny_config(config.parent / "off", ZONES, HISTORY_START, alerts={"enabled": False})
        assert main(["alerts", "--config", str(off)]) == EXIT_OK
        assert "alerts off" in capsys.readouterr().out
        assert on_server()[0] == {FAILED: [], LATE: []}

        assert main(["alerts", "--config", str(config)]) == EXIT_OK
        again, _ = on_server()
        assert all(len(ids) == 1 for ids in again.values())

        # A notification block of one's own ([alerts] block = "slug/name"), e.g. e-mail: used as it is.
        desk = CustomWebhookNotificationBlock(name="desk", url=receiver.url).save("desk", overwrite=True)
        own = set_up_alerts(load_settings(config, alerts={"block": "custom-webhook/desk"}), daily_id())
        assert own.block_document_id == desk
        with get_client(sync_client=True) as client:
            [failed] = client.read_automations_by_name(FAILED)
        assert failed.actions[0].block_document_id == desk
        Secret(value="not a notifier").save("not-a-notifier", overwrite=True)
        for block, problem in (
            ("secret/not-a-notifier", "is not a notification block"),
            ("custom-webhook/none", ""),
        ):
            with pytest.raises(ConfigError, match=f"alerts.block = '{block}'.*{problem}"):
                set_up_alerts(load_settings(config, alerts={"block": block}), daily_id())
        set_up_alerts(load_settings(config), daily_id())  # the configured webhook again
