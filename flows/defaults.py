"""Prefect's defaults for a local, offline Spotcast install, applied by an explicit call.

`apply_prefect_defaults()` sets a project-local Prefect home, no telemetry, a server start-up timeout
that a fresh SQLite database needs on small machines, and the run logs the UI shows: Spotcast's own
loggers reach each flow run's log (progress, retries and their waits, which model forecast),
Prefect's per-task "Finished in state Completed()" lines do not (task failures still do). Values
already set in the environment win; the flow-run processes Prefect starts inherit them.

Who calls it, and why there (importing `flows` changes nothing):

* the `spotcast` command, before it imports Prefect (`forecasting/cli.py`), and `flows.serve.serve`
  for callers from Python: Prefect reads most of these settings as it loads;
* the modules of the deployed flows, `flows/daily.py` and `flows/backfill.py`, at import: the
  entrypoints of prefect.yaml and of `serve`'s deployments, so the one thing a worker's flow-run
  process imports of Spotcast. There Prefect has loaded (and set up its logging) already, so what
  counts is the loggers' level and the run-log handler, which this function sets in that case.

It is idempotent: a second call changes nothing.
"""

from __future__ import annotations

import logging
import os
import sys

from forecasting.config import PROJECT_ROOT

SPOTCAST_LOGGERS = "spotcast,forecasting"
PREFECT_DEFAULTS = {
    "PREFECT_HOME": str(PROJECT_ROOT / ".prefect"),
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_EXTRA_LOGGERS": SPOTCAST_LOGGERS,
    # Spotcast logs outside runs too (the CLI before and after a flow): not an error there.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
}


def apply_prefect_defaults() -> None:
    """Set `PREFECT_DEFAULTS` where the environment does not, and give Spotcast's loggers INFO and,
    once Prefect's logging is set up, the flow-run log's handler (see the module docstring)."""
    for name, value in PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    loggers = [logging.getLogger(name) for name in SPOTCAST_LOGGERS.split(",")]
    # In a flow-run process nobody else sets them: Spotcast's INFO lines would stop at the root's WARNING.
    for logger in loggers:
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    # A worker's flow-run process imports Prefect (and configures its logging) before Spotcast: give
    # Spotcast's loggers the run-log handler now, as Prefect does for PREFECT_LOGGING_EXTRA_LOGGERS.
    if "prefect.logging.configuration" in sys.modules:
        from prefect.logging.handlers import APILogHandler  # loaded already: Prefect is set up

        # Only the run-log handler: whoever else hangs handlers on prefect.extra (pytest's capture
        # handlers of one test) must not be copied onto Spotcast's loggers for good.
        run_log = [h for h in logging.getLogger("prefect.extra").handlers if isinstance(h, APILogHandler)]
        for logger in loggers:
            for handler in run_log:
                if handler not in logger.handlers:
                    logger.addHandler(handler)
