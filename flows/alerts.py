"""Alerts: when the scheduled daily run fails, crashes, or has not finished by the configured local
time, Prefect's own automations send a notification ([alerts] in the configuration;
docs/operations.md, "Alerts"). Set up on the Prefect server by `spotcast serve` as it starts (and by
`spotcast alerts` for deployments of prefect.yaml), idempotently: what exists is updated, never
duplicated; with alerts off, Spotcast's automations are removed.

    block        "spotcast-alerts" (Custom Webhook): a JSON POST {"text", "subject", "body"} to the
                 URL of SPOTCAST_ALERT_WEBHOOK_URL or [alerts] webhook_url (kept as a secret field);
                 or [alerts] block = "slug/name", a notification block of your own (e-mail …)
    automations  "spotcast: daily run failed"  Reactive: a run of the daily deployment turns Failed,
                 Crashed or TimedOut → one notification naming the run, the failing step and the
                 one-line reason (the run's state message: flows/daily.py `step_failed`)
                 "spotcast: daily run late"  Proactive: a run of the daily deployment went Pending
                 (or Late: nothing picked it up) and reached no final state within deadline −
                 daily_at (16:00 − 14:00 = 2 h) → one notification; a Cancelled run counts as not
                 finished (a stopped `serve` cancels its run in flight)

The server evaluates them (its triggers and actions services, which `prefect server start` and
Spotcast's own servers run), so an alert needs the server up, not the runner. The automations are
not owned by the deployment: Prefect deletes a deployment's owned automations each time it is
applied.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from forecasting.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from prefect.automations import Automation
    from prefect.client.orchestration import SyncPrefectClient

log = logging.getLogger("spotcast.alerts")

WEBHOOK_ENV = "SPOTCAST_ALERT_WEBHOOK_URL"
BLOCK_NAME = "spotcast-alerts"
FAILED, LATE = "spotcast: daily run failed", "spotcast: daily run late"
AUTOMATIONS = (FAILED, LATE)
TAGS = ["spotcast"]
FAILURE_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut")
# A run started (Pending), or is overdue with nothing to run it (Late: the server's late-runs service).
START_EVENTS = ("prefect.flow-run.Pending", "prefect.flow-run.Late")
# Finished: completed, or already alerted as failed. Cancelled is not: its forecast is missing too.
FINAL_EVENTS = ("prefect.flow-run.Completed", *FAILURE_EVENTS)
# The webhook's JSON body; {{subject}} and {{body}} are the rendered notification.
WEBHOOK_JSON = {"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"}

# Jinja templates Prefect renders when an automation fires: flow_run is the run of the event.
_LINK = "{% set link = flow_run|ui_url %}{% if link %}\nIn the Prefect UI: {{ link }}{% endif %}"
FAILED_SUBJECT = "Spotcast daily run {{ flow_run.name }}: {{ flow_run.state.name }}"
FAILED_BODY = (
    "The daily run {{ flow_run.name }} of Spotcast ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message or 'no message' }}\n"
    "Run {{ flow_run.name }} ({{ flow_run.id }}), deployment {{ deployment.name }}, "
    "expected at {{ flow_run.expected_start_time }}." + _LINK
)


def _late_templates(deadline: str) -> tuple[str, str]:
    subject = f"Spotcast daily run {{{{ flow_run.name }}}}: not finished by {deadline}"
    body = (
        f"The daily run {{{{ flow_run.name }}}} of Spotcast has not finished by {deadline}: it is "
        "{{ flow_run.state.name }}{% if flow_run.state.message %} ({{ flow_run.state.message }}){% endif %}.\n"
        "Run {{ flow_run.name }} ({{ flow_run.id }}), deployment {{ deployment.name }}, "
        "expected at {{ flow_run.expected_start_time }}." + _LINK
    )
    return subject, body


@dataclass(frozen=True)
class AlertsSetup:
    """What `set_up_alerts` left on the server: the block's document id and the automations by name
    (none when alerts are off, `reason` saying why)."""

    block_document_id: UUID | None
    automations: dict[str, UUID]
    reason: str = ""


def late_after(settings: Settings) -> timedelta | None:
    """How long after its start a daily run must have finished: from [schedule] daily_at to [alerts]
    deadline (the next day when the deadline is earlier on the clock); None without a deadline.
    ConfigError when the deadline is daily_at itself, or less than Prefect's 10 s minimum after it."""
    deadline, start = settings.alerts.deadline, settings.schedule.daily_at
    if deadline is None:
        return None
    day = datetime(2000, 1, 1)
    after = (datetime.combine(day, deadline) - datetime.combine(day, start)) % timedelta(days=1)
    if after < timedelta(seconds=10):
        where = "itself" if not after else f"only {after.seconds} s later (Prefect's minimum is 10 s)"
        raise ConfigError(
            f"alerts.deadline = {deadline:%H:%M:%S} is [schedule] daily_at ({start:%H:%M:%S}) {where}: give "
            "the local time by which the daily run must have finished (e.g. two hours later)"
        )
    return after


def _clock(at: time) -> str:
    return f"{at:%H:%M:%S}" if at.second else f"{at:%H:%M}"


def webhook_url(settings: Settings) -> str | None:
    """The webhook URL: SPOTCAST_ALERT_WEBHOOK_URL, else [alerts] webhook_url, else None."""
    return os.environ.get(WEBHOOK_ENV) or settings.alerts.webhook_url


def _why_off(settings: Settings) -> str:
    if not settings.alerts.enabled:
        return "[alerts] enabled = false"
    if not settings.alerts.block and not webhook_url(settings):
        return f"no webhook: set {WEBHOOK_ENV} (or [alerts] webhook_url, or [alerts] block)"
    return ""


def alert_automations(settings: Settings, deployment_id: UUID, block_document_id: UUID) -> list[Automation]:
    """The automations of the daily deployment `deployment_id`, notifying through the block
    `block_document_id` (no id: not on any server yet)."""
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification

    of_the_daily_runs = {
        "match": {"prefect.resource.id": "prefect.flow-run.*"},
        "match_related": {
            "prefect.resource.id": f"prefect.deployment.{deployment_id}",
            "prefect.resource.role": "deployment",
        },
        "for_each": {"prefect.resource.id"},  # each run on its own
    }
    automations = [
        Automation(
            name=FAILED,
            description="Spotcast (flows/alerts.py, [alerts] in the configuration): a notification when "
            "a run of the daily deployment fails, crashes or times out.",
            enabled=True,
            tags=TAGS,
            trigger=EventTrigger(
                **of_the_daily_runs, expect=set(FAILURE_EVENTS), posture=Posture.Reactive, threshold=1
            ),
            actions=[
                SendNotification(
                    block_document_id=block_document_id, subject=FAILED_SUBJECT, body=FAILED_BODY
                )
            ],
        )
    ]
    within = late_after(settings)
    if within is not None:
        deadline = f"{_clock(settings.alerts.deadline)} {settings.schedule.timezone}"
        subject, body = _late_templates(deadline)
        automations.append(
            Automation(
                name=LATE,
                description=f"Spotcast (flows/alerts.py, [alerts] deadline): a notification when a run of "
                f"the daily deployment has not finished {within} after it started (by {deadline} for "
                f"the run due at {_clock(settings.schedule.daily_at)}).",
                enabled=True,
                tags=TAGS,
                trigger=EventTrigger(
                    **of_the_daily_runs,
                    after=set(START_EVENTS),
                    expect=set(FINAL_EVENTS),
                    posture=Posture.Proactive,
                    threshold=1,
                    within=within,
                ),
                actions=[SendNotification(block_document_id=block_document_id, subject=subject, body=body)],
            )
        )
    return automations


def _notification_block(settings: Settings) -> UUID:
    """The document id of the block alerts go through: [alerts] block, else the webhook block
    "spotcast-alerts", saved (or overwritten) with the configured URL."""
    from prefect.blocks.core import Block
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    if settings.alerts.block:
        try:
            block = Block.load(settings.alerts.block)
        except ValueError as exc:
            raise ConfigError(f"alerts.block = {settings.alerts.block!r}: {exc}") from None
        if "notify" not in block.get_block_capabilities():
            raise ConfigError(f"alerts.block = {settings.alerts.block!r} is not a notification block")
        return block._block_document_id
    webhook = CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url="{{url}}",  # the URL itself is a secret field: often it carries a token
        method="POST",
        json_data=WEBHOOK_JSON,
        headers={"Content-Type": "application/json"},
        secrets={"url": webhook_url(settings)},
    )
    return webhook.save(BLOCK_NAME, overwrite=True)


def _upsert(client: SyncPrefectClient, automation: Automation) -> UUID:
    from prefect.events.schemas.automations import AutomationCore

    existing = client.read_automations_by_name(automation.name)
    if not existing:
        return client.create_automation(AutomationCore(**automation.model_dump(exclude={"id"})))
    first, *extra = existing
    # An update takes no owner (Prefect's own Automation.update leaves it out too).
    client.update_automation(
        first.id, AutomationCore(**automation.model_dump(exclude={"id", "owner_resource"}))
    )
    for duplicate in extra:  # left by an older or concurrent set-up
        client.delete_automation(duplicate.id)
    return first.id


def remove_alerts() -> list[str]:
    """Delete Spotcast's automations from the server (the block stays: it holds no trigger)."""
    from prefect.client.orchestration import get_client

    removed = []
    with get_client(sync_client=True) as client:
        for name in AUTOMATIONS:
            for automation in client.read_automations_by_name(name):
                client.delete_automation(automation.id)
                removed.append(name)
    return removed


def set_up_alerts(settings: Settings, deployment_id: UUID) -> AlertsSetup:
    """Create or update the block and the automations for the daily deployment `deployment_id` on
    the server Prefect's client talks to (PREFECT_API_URL); with alerts off, remove Spotcast's
    automations. ConfigError for a bad [alerts] (before anything is written)."""
    from prefect.client.orchestration import get_client

    late_after(settings)  # a bad deadline fails first
    reason = _why_off(settings)
    if reason:
        removed = remove_alerts()
        log.warning("alerts off (%s)%s", reason, f": removed {', '.join(removed)}" if removed else "")
        return AlertsSetup(None, {}, reason)
    block_id = _notification_block(settings)
    automations = alert_automations(settings, deployment_id, block_id)
    with get_client(sync_client=True) as client:
        ids = {automation.name: _upsert(client, automation) for automation in automations}
        if LATE not in ids:
            for stale in client.read_automations_by_name(LATE):
                client.delete_automation(stale.id)
    log.info("alerts: %s through %s", ", ".join(ids), settings.alerts.block or f"the webhook {BLOCK_NAME}")
    return AlertsSetup(block_id, ids)


def set_up_deployed_alerts(config: str | None = None) -> AlertsSetup:
    """`set_up_alerts` for the daily deployment already on the server ("daily/daily", as
    `prefect deploy --all` of prefect.yaml or `spotcast serve` left it)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from flows.serve import DAILY

    settings = load_settings(config)
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"{DAILY}/{DAILY}")
        except ObjectNotFound:
            raise ConfigError(
                f"no deployment {DAILY}/{DAILY} on the Prefect server: deploy it first (`prefect deploy "
                "--all`, or `spotcast serve`, which sets up the alerts itself)"
            ) from None
    return set_up_alerts(settings, deployment.id)
