"""Prefect flows: thin orchestration over the `forecasting` library.

Importing this package sets Prefect's defaults for a local, offline install before Prefect loads:
a project-local Prefect home, no telemetry, and a server start-up timeout that a fresh SQLite
database needs on small machines. Values already set in the environment win.
"""

import os
from pathlib import Path

_PROJECT_ROOT = Path(__file__).resolve().parent.parent

for _name, _value in {
    "PREFECT_HOME": str(_PROJECT_ROOT / ".prefect"),
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(_name, _value)
