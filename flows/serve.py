"""Serve the flows with Prefect's own runner: the daily flow on its schedule, backfills on demand,
the Prefect UI to watch, trigger and inspect them.

    serve()  →  deployments "daily/daily" (cron at schedule.daily_at, read in schedule.timezone) and
                "backfill/backfill" (no schedule: manual runs with parameters)
             →  the daily run's alerts, [alerts]: Prefect automations and a notification block
                (flows/alerts.py), created or updated on the server
             →  prefect.serve(): Prefect's runner executes their runs as subprocesses

This module builds the deployments and runs them; the server they run on (the one PREFECT_API_URL
names, else `prefect server start` for as long as `serve` runs, recorded for one-shot commands) is
flows/servers.py's `server_for_serve`. With workers of your own, deploy prefect.yaml instead
(docs/operations.md).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from flows.defaults import apply_prefect_defaults
from flows.servers import DEFAULT_HOST, DEFAULT_PORT, server_for_serve
from forecasting.config import Schedule, default_config, load_settings

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

log = logging.getLogger("spotcast.serve")

DAILY, BACKFILL = "daily", "backfill"  # deployment names (the flows have the same names)
TAGS = ["spotcast"]


def daily_cron(schedule: Schedule) -> str:
    """The cron line of the daily run: every day at `schedule.daily_at` (read in schedule.timezone)."""
    return f"{schedule.daily_at.minute} {schedule.daily_at.hour} * * *"


def daily_schedule_label(schedule: Schedule) -> str:
    """What the Prefect UI shows for the daily schedule (its slug): the time *and* its zone. The UI
    words a cron schedule without its time zone ("At 02:00 PM every day": the zone is in a tooltip
    only) unless the schedule has a slug; the slug also names the schedule as the creator of the
    runs it plans."""
    return f"every day at {schedule.daily_at:%H:%M} {schedule.timezone}"


def build_deployments(config: str | Path | None = None) -> list[RunnerDeployment]:
    """The two deployments, validated against the configuration (ConfigError if invalid): "daily" on
    the configured schedule and "backfill" without one. Both get the configuration file (absolute, so
    runs do not depend on the runner's working directory) as their `config` parameter."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.backfill import backfill_flow
    from flows.daily import daily_flow

    settings = load_settings(config)
    parameters = {"config": str(Path(config).resolve()) if config else str(default_config())}
    schedule = settings.schedule
    # The module path, not the file: runs import `flows.daily` from the installed package.
    daily = daily_flow.to_deployment(
        DAILY,
        schedule=Cron(
            daily_cron(schedule), timezone=schedule.timezone, slug=daily_schedule_label(schedule)
        ),
        parameters=parameters,
        description=(
            f"Every day at {schedule.daily_at:%H:%M} {schedule.timezone}, after the day-ahead auction "
            "results: ingest the new day(s) (backfilling first on an empty lake), load the champion "
            "model (training the first one if none exists), issue the four-week forecast and report."
        ),
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    backfill = backfill_flow.to_deployment(
        BACKFILL,
        parameters=parameters,
        description=(
            "Manual: pull history from `start` (default: history.start) up to `end` (default: now, or "
            "the end of the recording for the replay feed), resumable; `zones` limits it to some zones."
        ),
        tags=TAGS,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [daily, backfill]


def next_runs(deployment: RunnerDeployment, n: int = 3, start: datetime | None = None) -> list[datetime]:
    """The next `n` scheduled instants (UTC) of `deployment` at or after `start` (default: now; naive
    is UTC), as Prefect's own scheduler computes them (the cron read in the schedule's time zone, DST
    included); [] for a deployment without a schedule."""
    from prefect.server.schemas.schedules import CronSchedule
    from prefect.utilities.asyncutils import run_coro_as_sync

    start = datetime.now(UTC) if start is None else start
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start
    instants: set[datetime] = set()
    for entry in deployment.schedules or []:
        cron = entry.schedule
        server = CronSchedule(cron=cron.cron, timezone=cron.timezone, day_or=cron.day_or)
        dates = run_coro_as_sync(server.get_dates(n=n, start=start))
        instants.update(datetime.fromtimestamp(d.timestamp(), tz=UTC) for d in dates or [])
    return sorted(instants)[:n]


def serve(
    config: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    start_server: bool | None = None,
    limit: int | None = 1,
) -> None:
    """Serve the "daily" (scheduled) and "backfill" (manual) deployments until Ctrl-C or SIGTERM.

    start_server: None (default) starts a local server on host:port unless PREFECT_API_URL names one;
        True always does; False never does (ConfigError without PREFECT_API_URL).
    limit: at most this many runs at a time (default 1: the lake has a single writer, so a daily run
        due during a long backfill waits for it instead of failing on the lake lock).

    Raises ConfigError (bad configuration, no server) and ServeError (the server did not start).
    Returns after Prefect's runner has shut down (it cancels runs in flight and pauses the schedules).
    """
    apply_prefect_defaults()  # before Prefect loads, for callers from Python (the CLI applied them)
    from prefect import serve as prefect_serve

    from flows.alerts import late_after, set_up_alerts

    deployments = build_deployments(config)  # a bad configuration fails before anything starts
    settings = load_settings(config)
    late_after(settings)  # a bad [alerts] deadline too
    main_thread = threading.current_thread() is threading.main_thread()
    # Until Prefect's runner installs its own handler, SIGTERM unwinds: the server stops too.
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0)) if main_thread else None
    try:
        with server_for_serve(host, port, start_server, settings.lake_root) as api_url:
            # The daily deployment registered first (the runner registers it again, the same one):
            # its alerts need its id, and are in place before its first run (flows/alerts.py).
            set_up_alerts(settings, next(d for d in deployments if d.name == DAILY).apply())
            for deployment in deployments:
                upcoming = ", ".join(f"{t:%Y-%m-%d %H:%M}Z" for t in next_runs(deployment))
                log.info(
                    "deployment %s/%s: %s", deployment.flow_name, deployment.name, upcoming or "on demand"
                )
            log.info("Prefect UI: %s", api_url.removesuffix("/api"))
            prefect_serve(*deployments, limit=limit)
    except KeyboardInterrupt:  # Ctrl-C while the server was starting
        log.info("stopped")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
