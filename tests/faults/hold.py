"""Helper for the fault tests (not a test module): a live process that holds something in a lake
until it is killed, as another Spotcast run would.

    python tests/faults/hold.py lock LAKE_ROOT PURPOSE     hold the lake's write lock
    python tests/faults/hold.py temporary FOLDER           keep a temporary file of a write in progress

It prints "holding <path>" once it holds it, then sleeps.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from forecasting.lake.files import LOCK_NAME, LakeFS, temporary_name, write_lock


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # SIGTERM: finish, releasing the lock
    what, where, *rest = argv
    if what == "lock":
        lake = LakeFS.open(where)
        with write_lock(lake, rest[0] if rest else "hold.py"):
            print(f"holding {lake.path(LOCK_NAME)}", flush=True)
            time.sleep(3600)
        return 0
    Path(where).mkdir(parents=True, exist_ok=True)
    path = temporary_name(where)
    Path(path).write_bytes(b"PAR1 a forecast being written")
    print(f"holding {path}", flush=True)
    time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
