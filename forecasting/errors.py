"""The errors a user can fix, and the exit code the `spotcast` command gives each.

Everything Spotcast raises for a problem a user or operator can act on derives from `SpotcastError`:
its message says what is wrong and where, in one line, and `exit_code` is what the command exits
with. Any other exception is a bug and keeps its traceback.

    SpotcastError          1  an error the user can fix (the message says how)
    ├── UsageError         2  bad command-line input or run parameters
    ├── ConfigError        2  the configuration file is missing, unreadable or invalid
    ├── DataError          1  input data that cannot be trusted (text in numbers, inf, duplicates)
    ├── MissingData        1  the lake holds nothing for what was asked yet
    ├── LakeError          1  a lake file cannot be read or written; the lock is held (lake/files.py)
    ├── FeedError          1  a feed failed (feeds/base.py; normally retried and reported, not raised)
    ├── ArtifactError      1  a model artifact is missing, unreadable or of another format (model/artifact.py)
    ├── ServeError         1  a Prefect server could not be started or reached (flows/servers.py)
    └── ClusterError       1  a Dask scheduler given by address runs other versions (flows/cluster.py)
"""

from __future__ import annotations

import logging

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_DEGRADED = 0, 1, 2, 3


class SpotcastError(Exception):
    """A problem the user can fix; the message names what and where, in one line."""

    exit_code = EXIT_ERROR


class UsageError(SpotcastError):
    """Bad command-line input or run parameters: an unknown zone, an empty date range."""

    exit_code = EXIT_USAGE


class ConfigError(SpotcastError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = EXIT_USAGE


class DataError(SpotcastError):
    """Input data that cannot be trusted: text in a numeric column, non-finite values, duplicate hours."""


class MissingData(SpotcastError):
    """The lake holds nothing yet for what was asked (no forecast issued, no history ingested)."""


class LakeError(SpotcastError):
    """A lake file cannot be read or written, or the lake's write lock is held."""


class HandledErrorsInOneLine(logging.Filter):
    """Drop the traceback from log records of a `SpotcastError` (Prefect logs every exception that
    leaves a task or flow with its traceback): the error is handled, its message is the news."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], SpotcastError):
            record.exc_info, record.exc_text = None, None
        return True


def log_handled_errors_in_one_line(*logger_names: str) -> None:
    """Install `HandledErrorsInOneLine` on these loggers (once)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HandledErrorsInOneLine) for f in logger.filters):
            logger.addFilter(HandledErrorsInOneLine())
