"""`spotcast models list`: the registry's training runs as a compact table that fits 120 columns
(the champion marked), a wide one (every column, each tag its own column) or JSON (everything).

       run                     trained (UTC)     data as of (UTC)  trigger               crps   rmae  cover
    +  20230601T120000-a28bfb  2023-06-01 12:00  2023-06-01 12:00  daily: no model yet  8.412  0.912   0.74
       20230601T121500-2915e9  2023-06-01 12:15  2023-06-01 12:00  tune #0              9.100  0.950   0.70
    *  20230601T130000-e360a7  2023-06-01 13:00  2023-06-01 12:00  tune-best #0         7.810  0.874   0.80
    * champion: run 20230601T130000-e360a7 from 2023-06-01 12:00 UTC on (as-of clock); + champion before

`*` marks the champion (the newest promotion), `+` a run that was champion before. "data as of" is the
instant whose published data trained the run (`models promote RUN_ID --as-of T` needs T at or after
it). Reads the registry only: listing never imports the model libraries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pandas as pd

COMPACT_WIDTH = 120
CHAMPION_MARK, FORMER_MARK = "*", "+"
TRIGGER_WIDTH = 28  # a longer trigger (a tag of your own) is cut, with …; --wide shows it whole
# The compact table's metrics: (metric name in the registry, heading, decimals).
COMPACT_METRICS = (("crps", "crps", 3), ("rmae", "rmae", 3), ("coverage_10_90", "cover", 2))
# Columns --wide leaves to --json: the whole configuration and the model parameters, as JSON.
JSON_ONLY = ("config", "params")
RUN_FIELDS = (
    "run_id",
    "model_id",
    "trained_at",
    "as_of",
    "train_start",
    "train_end",
    "training_seconds",
    "zones",
    "code_version",
    "data_hash",
    "artifact",
)
TAG_ORDER = ("trigger", "study", "trial", "state")  # shown first, then the other tags by name


def tags_of(run: pd.Series) -> dict[str, str]:
    """The run's tags (a JSON object in the registry; {} when absent or unreadable)."""
    try:
        tags = json.loads(run.get("tags") or "{}")
    except (TypeError, ValueError):
        return {}
    return tags if isinstance(tags, dict) else {}


def _metrics(runs: pd.DataFrame) -> list[str]:
    return [c.removeprefix("metric_") for c in runs.columns if c.startswith("metric_")]


def _mark(run_id: str, champion: str | None, former: set[str]) -> str:
    if run_id == champion:
        return CHAMPION_MARK
    return FORMER_MARK if run_id in former else ""


def _minute(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{pd.Timestamp(value):%Y-%m-%d %H:%M}"


def _number(value: object, decimals: int) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.{decimals}f}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def trigger_of(tags: dict[str, str]) -> str:
    """What started the run, in a few words: the trigger tag, a tuning trial's number and its state
    when it did not complete (`tune #12 pruned`)."""
    parts = [tags.get("trigger", "")]
    if tags.get("trial") is not None:
        parts.append(f"#{tags['trial']}")
    if tags.get("state") not in (None, "complete"):
        parts.append(str(tags["state"]))
    return " ".join(p for p in parts if p)


def _render(headings: Sequence[str], rows: list[list[str]], right: set[int]) -> str:
    """A plain text table: two spaces between columns, numbers right-aligned, no trailing spaces."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headings)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headings), *(line(r) for r in rows)])


def compact_table(runs: pd.DataFrame, champion: str | None, former: set[str]) -> str:
    """One line per run: the champion mark, run id, training time and data as-of (UTC), trigger
    (`trigger_of`) and the validation CRPS, rMAE and p10–p90 coverage; at most COMPACT_WIDTH
    characters a line."""
    headings = [
        "",
        "run",
        "trained (UTC)",
        "data as of (UTC)",
        "trigger",
        *(h for _, h, _ in COMPACT_METRICS),
    ]
    rows = []
    for _, run in runs.iterrows():
        metrics = [_number(run.get(f"metric_{name}"), digits) for name, _, digits in COMPACT_METRICS]
        trigger = _cut(trigger_of(tags_of(run)), TRIGGER_WIDTH)
        rows.append(
            [
                _mark(run["run_id"], champion, former),
                str(run["run_id"]),
                _minute(run["trained_at"]),
                _minute(run.get("as_of")),
                trigger,
                *metrics,
            ]
        )
    return _render(headings, rows, right={5, 6, 7})


def _tag_names(runs: pd.DataFrame) -> list[str]:
    names = {name for _, run in runs.iterrows() for name in tags_of(run)}
    return [n for n in TAG_ORDER if n in names] + sorted(names - set(TAG_ORDER))


def wide_table(runs: pd.DataFrame, champion: str | None, former: set[str]) -> str:
    """Every column of the registry but the configuration and parameters (JSON, see `run_records`),
    each metric and each tag its own column (a tag named like a column gets a `tag_` prefix)."""
    fields = [f for f in RUN_FIELDS if f in runs.columns]
    metrics = _metrics(runs)
    tags = _tag_names(runs)
    tag_headings = [f"tag_{t}" if t in fields or t in metrics else t for t in tags]
    headings = ["", *fields, *metrics, *tag_headings]
    rows = []
    for _, run in runs.iterrows():
        cells = [_mark(run["run_id"], champion, former)]
        for field in fields:
            value = run[field]
            if field == "training_seconds":
                cells.append(_number(value, 0))
            elif isinstance(value, pd.Timestamp):
                cells.append(_minute(value))
            else:
                cells.append(
                    "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)
                )
        cells += [_number(run.get(f"metric_{m}"), 3) for m in metrics]
        run_tags = tags_of(run)
        cells += [str(run_tags.get(t, "")) for t in tags]
        rows.append(cells)
    first_metric = 1 + len(fields)
    right = {1 + fields.index("training_seconds")} if "training_seconds" in fields else set()
    right |= set(range(first_metric, first_metric + len(metrics)))
    return _render(headings, rows, right)


def _json_value(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def _parsed(text: object) -> object:
    try:
        return json.loads(text) if isinstance(text, str) and text else None
    except ValueError:
        return text


def run_records(runs: pd.DataFrame, champion: str | None, former: set[str]) -> list[dict[str, object]]:
    """Each run as a JSON-ready object: its registry columns (timestamps ISO, zones a list), whether it
    is (`champion`) or was (`was_champion`) the champion, `metrics` and `tags` as objects, the
    parameters and the configuration parsed (`params`, `config`). Metrics a run lacks are left out."""
    records = []
    for _, run in runs.iterrows():
        record: dict[str, object] = {f: _json_value(run[f]) for f in RUN_FIELDS if f in runs.columns}
        if isinstance(record.get("zones"), str):
            record["zones"] = [z for z in str(record["zones"]).split(",") if z]
        record["champion"] = run["run_id"] == champion
        record["was_champion"] = run["run_id"] in former or run["run_id"] == champion
        record["metrics"] = {
            m: _json_value(run[f"metric_{m}"]) for m in _metrics(runs) if not pd.isna(run[f"metric_{m}"])
        }
        record["tags"] = tags_of(run)
        for name in JSON_ONLY:
            if name in runs.columns:
                record[name] = _parsed(run[name])
        records.append(record)
    return records


def legend(champion: str | None, champion_from: str | None, former: set[str], shown: set[str]) -> str:
    """The line under the table: what the marks mean (only the marks shown), or why none is."""
    if champion is None:
        return "no champion yet: `spotcast train` promotes a first model, `spotcast models promote RUN_ID` one of these"
    since = (
        f" from {pd.Timestamp(champion_from):%Y-%m-%d %H:%M} UTC on (as-of clock)" if champion_from else ""
    )
    parts = [
        f"{CHAMPION_MARK} champion: run {champion}{since}" + ("" if champion in shown else ", not listed")
    ]
    if former & shown:
        parts.append(f"{FORMER_MARK} champion before")
    return "; ".join(parts)
