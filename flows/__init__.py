"""Prefect flows: thin orchestration over the `forecasting` library.

Importing this package sets Prefect's defaults for a local, offline install before Prefect loads:
a project-local Prefect home, no telemetry, a server start-up timeout that a fresh SQLite database
needs on small machines, and the run logs the UI shows: Spotcast's own loggers reach each flow run's
log (progress, retries and their waits, which model forecast), Prefect's per-task "Finished in state
Completed()" lines do not (task failures still do). Values already set in the environment win; the
flow-run processes Prefect starts inherit them.
"""

import logging
import os
import sys
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parent.parent
SPOTCAST_LOGGERS = "spotcast,forecasting"

for _name, _value in {
    "PREFECT_HOME": str(_PROJECT_ROOT / ".prefect"),
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_LOGGING_EXTRA_LOGGERS": SPOTCAST_LOGGERS,
    # Spotcast logs outside runs too (the CLI before and after a flow): not an error there.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    "PREFECT_LOGGING_LOGGERS_PREFECT_TASK_RUNS_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_name, _value)

# In a flow-run process nobody else sets them: Spotcast's INFO lines would stop at the root's WARNING.
for _logger in SPOTCAST_LOGGERS.split(","):
    if logging.getLogger(_logger).level == logging.NOTSET:
        logging.getLogger(_logger).setLevel(logging.INFO)

# A worker's flow-run process imports Prefect (and configures its logging) before this package: give
# Spotcast's loggers the run-log handler now, as Prefect does for PREFECT_LOGGING_EXTRA_LOGGERS.
if "prefect.logging.configuration" in sys.modules:
    for _logger in SPOTCAST_LOGGERS.split(","):
        for _handler in logging.getLogger("prefect.extra").handlers:
            if _handler not in logging.getLogger(_logger).handlers:
                logging.getLogger(_logger).addHandler(_handler)
