"""The `spotcast` command: parses arguments, runs a flow or a library call, maps the outcome to an
exit code an operator (or cron, or CI) can act on.

Exit codes: 0 done; 1 error; 2 bad usage or configuration; 3 finished degraded (some feed did not
land, or some lake file could not be read: see the per-feed status or the files named above it);
143 and 130: stopped by SIGTERM or SIGINT (128 + the signal; `spotcast: stopped by …`, see
docs/reliability.md "Stopping a run"). Errors a user can fix (`forecasting.errors.SpotcastError`)
print one line, `spotcast: <message>`; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console

from forecasting import console
from forecasting.clock import as_utc
from forecasting.config import Settings, load_settings
from forecasting.errors import (
    EXIT_DEGRADED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    MissingData,
    SpotcastError,
    UsageError,
)
from forecasting.ingest.land import IngestReport
from forecasting.ingest.pull import stop_pulls
from forecasting.lake.files import LakeFS
from forecasting.lake.series_store import scan_lake
from forecasting.products import KINDS
from forecasting.reports.export import EXPORT_FORMATS, EXPORT_SUFFIXES, check_destination

if TYPE_CHECKING:
    import numpy as np
    from prefect.states import State

    from forecasting.products import ProductForecast

__all__ = ["EXIT_DEGRADED", "EXIT_ERROR", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]


def _timestamp(text: str) -> pd.Timestamp:
    """`--as-of` values: ISO date or date-time; naive values are UTC."""
    try:
        return as_utc(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date or date-time: {text!r}") from exc


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO date (YYYY-MM-DD): {text!r}") from exc


def _export_file(text: str) -> Path:
    """`--out`: refused before anything is computed when its format is not one we write."""
    path = Path(text)
    if path.suffix.lower() not in EXPORT_SUFFIXES:
        raise argparse.ArgumentTypeError(f"must end in {EXPORT_FORMATS}, got {path.name!r}")
    return path


def _price(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a price in EUR/MWh: {text!r}") from None


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return number


class _AllZonesOnly(argparse.Action):
    """`--zones` where the command always covers every configured zone: refused, saying why."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object, **__: object) -> None:
        parser.error(
            "--zones is not supported here: the model is trained on, and forecasts, every configured "
            "zone together; use a configuration that lists only the zones you want"
        )


def _add_common(parser: argparse.ArgumentParser, zones: bool = True) -> None:
    parser.add_argument("--config", help="configuration file (default: configs/spotcast.toml)")
    if zones:
        parser.add_argument("--zones", nargs="+", metavar="ZONE", help="only these configured zones")
    else:
        parser.add_argument("--zones", nargs="+", action=_AllZonesOnly, help=argparse.SUPPRESS)


def _add_as_of(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of",
        type=_timestamp,
        help="replay clock: run as if it were this UTC instant (default: now; for the offline replay "
        "feed, the end of the recording)",
    )


def _add_out(parser: argparse.ArgumentParser, table: str) -> None:
    parser.add_argument(
        "--out",
        type=_export_file,
        help=f"also write {table} to this .csv or .parquet file, or the issue to an .xlsx workbook (a "
        "sheet per zone, Weekly, Products)",
    )


def _add_cluster(parser: argparse.ArgumentParser, workers_help: str) -> None:
    parser.add_argument("--workers", type=int, metavar="N", help=workers_help)
    parser.add_argument("--dask-address", metavar="URL", help="an existing Dask scheduler (tcp://host:8786)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spotcast",
        description="Day-ahead electricity price forecasts, four weeks ahead, with quantiles.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    daily = commands.add_parser(
        "daily", help="the daily run: ingest the new day(s) (backfill first if empty)"
    )
    _add_common(daily)
    _add_as_of(daily)
    daily.set_defaults(handler=_run_daily)

    backfill = commands.add_parser("backfill", help="pull the full history or a date range (resumable)")
    _add_common(backfill)
    _add_as_of(backfill)
    backfill.add_argument("--start", type=_date, help="first UTC day (default: history.start)")
    backfill.add_argument("--end", type=_timestamp, help="end, exclusive (default: the as-of instant)")
    backfill.add_argument(
        "--no-resume", dest="resume", action="store_false", help="re-pull the range even if already landed"
    )
    backfill.add_argument(
        "--repair",
        action="store_true",
        help="set corrupt series files aside and pull every hole in the range again",
    )
    backfill.set_defaults(handler=_run_backfill)

    train = commands.add_parser(
        "train", help="train a model on what the lake knew at --as-of; promote if better"
    )
    _add_common(train, zones=False)
    _add_as_of(train)
    train.set_defaults(handler=_run_train)

    forecast = commands.add_parser("forecast", help="issue the four-week forecast with the champion model")
    _add_common(forecast, zones=False)
    _add_as_of(forecast)
    _add_out(forecast, "the forecast")
    forecast.set_defaults(handler=_run_forecast)

    products = commands.add_parser(
        "products", help="the calendar products of the latest (or --as-of) issue, next to the forwards"
    )
    _add_common(products)
    products.add_argument(
        "--as-of", type=_timestamp, help="the issue stored for this UTC instant's date (default: the latest)"
    )
    products.add_argument(
        "--kinds", nargs="+", choices=KINDS, metavar="KIND", help=f"only these ({', '.join(KINDS)})"
    )
    products.add_argument("--above", type=_price, metavar="X", help="add P(settle > X EUR/MWh) per product")
    _add_out(products, "the product table")
    products.set_defaults(handler=_run_products)

    forwards = commands.add_parser(
        "forwards", help="the desk's forward settlement prices: land a file, show them"
    )
    forward_commands = forwards.add_subparsers(dest="forwards_command", required=True, metavar="ACTION")
    landing = forward_commands.add_parser(
        "land", help="validate the desk's files (CSV/xlsx) and land their rows"
    )
    landing.add_argument("files", nargs="+", type=Path, metavar="FILE")
    landing.add_argument("--config", help="configuration file")
    landing.set_defaults(handler=_run_forwards_land)
    showing = forward_commands.add_parser("show", help="the newest settlement per product known at --as-of")
    _add_common(showing)
    showing.add_argument(
        "--as-of", type=_timestamp, help="what was published by this UTC instant (default: all)"
    )
    showing.set_defaults(handler=_run_forwards_show)

    backtest = commands.add_parser("backtest", help="rolling weekly-origin backtest against seasonal naive")
    _add_common(backtest)
    backtest.add_argument("--start", type=_date, required=True, help="first origin's local date (Mondays)")
    backtest.add_argument("--end", type=_date, required=True, help="end date, exclusive")
    backtest.add_argument(
        "--retrain-every",
        type=_positive,
        metavar="N",
        help="retrain every N origins (default: once per period)",
    )
    _add_cluster(backtest, "fits and origins as task runs on a LocalCluster of N workers (default 1: serial)")
    backtest.set_defaults(handler=_run_backtest)

    tune = commands.add_parser(
        "tune", help="Optuna search of the model's parameters ([tune]); resumes a killed one"
    )
    tune.add_argument("--config", help="configuration file (default: configs/spotcast.toml)")
    _add_as_of(tune)  # the best trial is retrained on what was published by then
    tune.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="run until the study holds N trials (default: [tune] n_trials)",
    )
    tune.add_argument("--timeout", type=float, metavar="S", help="start no new trials after S seconds")
    tune.add_argument(
        "--no-retrain", dest="retrain", action="store_false", help="do not retrain the best trial"
    )
    tune.add_argument(
        "--show", action="store_true", help="print the study's best trials and importances; run nothing"
    )
    _add_cluster(
        tune, "trials at once on a LocalCluster of N workers (default: cores // [tune] trial_threads)"
    )
    tune.set_defaults(handler=_run_tune)

    models = commands.add_parser("models", help="the model registry: list and promote training runs")
    model_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    listing = model_commands.add_parser(
        "list",
        help="training runs, filtered and sorted (* marks the champion)",
        description="Training runs, oldest first: run, training time, trigger, validation CRPS, rMAE and "
        "p10-p90 coverage, the champion marked *. --wide: every column and tag; --json: everything.",
    )
    listing.add_argument("--config", help="configuration file")
    listing.add_argument(
        "--where",
        action="append",
        metavar="COND",
        help="a metric, column or tag compared with =, !=, <, <=, >, >= (e.g. crps<5, trigger=tune, "
        "study=NAME, trial<10); repeat it: every condition must hold",
    )
    listing.add_argument(
        "--sort", metavar="NAME", help="a metric (crps, rmae, coverage_10_90…), column or tag (trial)"
    )
    listing.add_argument("--desc", action="store_true", help="sort descending")
    shape = listing.add_mutually_exclusive_group()
    shape.add_argument(
        "--wide",
        action="store_true",
        help="every column, each metric and tag its own (wider than a screen)",
    )
    shape.add_argument(
        "--json",
        action="store_true",
        help="a JSON array, one object per run (parameters and configuration too)",
    )
    listing.set_defaults(handler=_run_models_list)
    promoting = model_commands.add_parser("promote", help="make a training run's model the champion")
    promoting.add_argument("run_id")
    promoting.add_argument("--config", help="configuration file")
    promoting.add_argument("--reason", default="promoted by hand", help="recorded with the promotion")
    _add_as_of(promoting)  # the champion from this instant of the lake's clock on
    promoting.set_defaults(handler=_run_models_promote)

    lineage = commands.add_parser("lineage", help="forecast → model → run → data → feed pulls")
    lineage.add_argument("issue_date", type=_date, help="issue date (local, YYYY-MM-DD)")
    lineage.add_argument("zone")
    lineage.add_argument("--config", help="configuration file")
    lineage.set_defaults(handler=_run_lineage)

    serve = commands.add_parser(
        "serve", help="serve the daily (scheduled) and backfill deployments; Prefect UI at http://HOST:PORT"
    )
    serve.add_argument("--config", help="configuration file (default: configs/spotcast.toml)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4200)
    serve.add_argument(
        "--start-server",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start a local Prefect server (default: only if PREFECT_API_URL is unset)",
    )
    serve.add_argument(
        "--api",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="serve the read-only HTTP API beside it, on HOST (default: on; `spotcast api`)",
    )
    serve.add_argument("--api-port", type=int, default=8000, metavar="PORT", help="the API's port (default 8000)")
    serve.set_defaults(handler=_run_serve)

    api = commands.add_parser(
        "api", help="the read-only HTTP API: forecasts, products, scores, lineage, status (docs at /docs)"
    )
    api.add_argument("--config", help="configuration file (default: configs/spotcast.toml)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free one)")
    api.set_defaults(handler=_run_api)

    alerts = commands.add_parser(
        "alerts",
        help="set up or update the daily run's alerts ([alerts]) on the Prefect server, for deployments "
        "of prefect.yaml (`serve` sets up its own)",
    )
    alerts.add_argument("--config", help="configuration file (default: configs/spotcast.toml)")
    alerts.set_defaults(handler=_run_alerts)

    status = commands.add_parser("status", help="what the lake holds: rows and newest hour per zone × series")
    _add_common(status)
    _add_as_of(status)
    status.set_defaults(handler=_run_status)

    check = commands.add_parser(
        "check", help="read every lake file and list the corrupt ones, and the hours missing per series"
    )
    _add_common(check)
    _add_as_of(check)
    check.set_defaults(handler=_run_check)
    return parser


def _exit_code_of(state: State) -> int:
    """Completed → 0; Failed with an ingest report (some feed did not land) → 3; a SpotcastError →
    its exit code (raised: `main` prints it); any other exception is raised with its traceback."""
    if state.is_completed():
        return EXIT_OK
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, IngestReport):
        print(f"spotcast: finished degraded: {state.message}", file=sys.stderr)
        return EXIT_DEGRADED
    if isinstance(outcome, BaseException):
        raise outcome
    return EXIT_ERROR


def _settings(args: argparse.Namespace) -> Settings:
    """The configuration for the `--zones` given (UsageError naming an unknown one)."""
    return load_settings(args.config).with_zones(getattr(args, "zones", None))


def _check_as_of(settings: Settings, args: argparse.Namespace) -> None:
    """A given --as-of no run can have (in the future; long after a replay's recording ends) is
    refused here: before Prefect starts, and before anything is pulled or written."""
    if args.as_of is not None:
        from forecasting.jobs.ingest import check_as_of

        check_as_of(settings, args.as_of)


def _print_lake(args: argparse.Namespace) -> int:
    """The lake's rows per zone × series (of what was published by --as-of, when given); files that
    cannot be read are named (exit 3), not fatal."""
    settings = _settings(args)
    scan = scan_lake(LakeFS.of(settings), zones=args.zones, as_of=args.as_of)
    table = scan.table
    known = f" published by {args.as_of}" if args.as_of is not None else ""
    print(f"\nlake {settings.lake_root}: {int(table['rows'].sum()) if len(table) else 0} curated rows{known}")
    print(table.to_string(index=False) if len(table) else "(empty)")
    for problem in scan.unreadable:
        print(f"spotcast: {problem}", file=sys.stderr)
    return EXIT_DEGRADED if scan.unreadable else EXIT_OK


def _print_ingest(state: State) -> None:
    """What an ingest run did, per feed × series (a few lines; the lake listing is `spotcast status`)."""
    outcome = state.result(raise_on_failure=False)
    if isinstance(outcome, IngestReport):
        print(f"\nfeed status ({outcome.new_rows} new or revised rows):\n{outcome.summary()}")


def _print_issued_forecast(args: argparse.Namespace) -> None:
    """The summary of the forecast the daily run issued, read back from the lake."""
    from forecasting.jobs.ingest import resolve_as_of
    from forecasting.lake.forecast_store import issue_date_of, read_forecast, read_products

    settings = load_settings(args.config)
    lake = LakeFS.of(settings)
    issue_date = issue_date_of(resolve_as_of(settings, args.as_of), settings.schedule.timezone)
    forecast = read_forecast(lake, issue_date, args.zones)
    models = ", ".join(sorted(forecast["model_id"].unique()))
    _print_forecast_summary(issue_date, forecast, models, read_products(lake, issue_date, args.zones))


def _print_forecast_summary(issue_date: date, forecast: pd.DataFrame, model: str, view: pd.DataFrame) -> None:
    """The hourly summary per zone and horizon week, then the week products and the forwards."""
    from forecasting.reports.product_tables import render_product_summary
    from forecasting.reports.tables import render_summary, summary_table

    print(f"\nforecast issued {issue_date} ({len(forecast)} rows) with {model}")
    print(render_summary(summary_table(forecast)))
    print(f"\n{render_product_summary(view)}")


# Flows are imported when run: importing Prefect costs seconds that `--help` and `status` need not pay.
def _loading(what: str, *packages: str) -> contextlib.AbstractContextManager[object]:
    """A step a command waits on before its first result: importing `packages` (Prefect, and torch
    and GluonTS for the model's flows: 4 to 10 s, more on a loaded machine), said on the console
    (`progress`); nothing to say when they were imported already (the temporary server's start)."""
    from forecasting import progress

    if all(name in sys.modules for name in packages):
        return contextlib.nullcontext()
    return progress.task(f"loading {what}")


def _run_daily(args: argparse.Namespace) -> int:
    # A bad configuration, zone or as-of fails here, before Prefect starts.
    _check_as_of(_settings(args), args)
    _begin_run(args)
    with _loading("Prefect and the model libraries", "prefect", "torch", "gluonts"):
        from flows.daily import daily_flow

    state = daily_flow(config=args.config, as_of=args.as_of, zones=args.zones, return_state=True)
    code = _exit_code_of(state)
    _print_ingest(state)
    if code in (EXIT_OK, EXIT_DEGRADED):  # the forecast is issued from what landed
        _print_issued_forecast(args)
    return code


def _run_backfill(args: argparse.Namespace) -> int:
    from forecasting.ingest.plan import check_backfill_range
    from forecasting.jobs.ingest import resolve_as_of

    settings = _settings(args)
    _check_as_of(settings, args)
    # With the as-of the flow resolves (now, or the end of a replay): a range with nothing to pull
    # (`--start 2030-01-01`) is refused before Prefect starts.
    check_backfill_range(settings, resolve_as_of(settings, args.as_of), args.start, args.end)
    _begin_run(args)
    with _loading("Prefect", "prefect"):
        from flows.backfill import backfill_flow

    state = backfill_flow(
        config=args.config,
        start=args.start,
        end=args.end,
        as_of=args.as_of,
        resume=args.resume,
        zones=args.zones,
        repair=args.repair,
        return_state=True,
    )
    code = _exit_code_of(state)
    _print_ingest(state)
    return code


def _run_train(args: argparse.Namespace) -> int:
    _check_as_of(load_settings(args.config), args)
    _begin_run(args)
    with _loading("Prefect and the model libraries", "prefect", "torch", "gluonts"):
        from flows.modelling import train_flow

    result = train_flow(config=args.config, as_of=args.as_of)
    metrics = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
    print(f"\nrun {result.run_id}: model {result.model_id} trained in {result.training_seconds:.0f} s")
    print(f"validation on recent weekly issues: {metrics}")
    print(
        f"{'promoted' if result.promoted else 'not promoted'}: {result.decision}\nartifact {result.artifact}"
    )
    return EXIT_OK


def _run_forecast(args: argparse.Namespace) -> int:
    _check_as_of(load_settings(args.config), args)
    if args.out:
        check_destination(args.out)  # before Prefect starts: a bad destination costs nothing
    _begin_run(args)
    with _loading("Prefect and the model libraries", "prefect", "torch", "gluonts"):
        from flows.modelling import forecast_flow

    issued = forecast_flow(config=args.config, as_of=args.as_of, out=args.out)
    if args.out:
        print(f"written to {args.out}")
    _print_forecast_summary(
        issued.issue_date, issued.forecast, issued.inputs["model_id"].iloc[0], issued.view
    )
    return EXIT_OK


def _stored_issue(settings: Settings, lake: LakeFS, as_of: pd.Timestamp | None) -> date:
    """The issue date the forecast store holds for `as_of` (its local date on the schedule's clock),
    or the latest one; MissingData saying which command stores it."""
    from forecasting.lake.forecast_store import issue_date_of, issue_dates

    stored = issue_dates(lake)
    if as_of is None:
        if not stored:
            raise MissingData(f"the lake {settings.lake_root} holds no forecast yet: run `spotcast daily`")
        return stored[-1]
    issue_date = issue_date_of(as_of, settings.schedule.timezone)
    if issue_date not in stored:
        raise MissingData(
            f"no forecast issued on {issue_date} (the issue date of {as_of:%Y-%m-%d %H:%M} UTC) is stored: "
            f"run `spotcast forecast --as-of {as_of:%Y-%m-%dT%H:%M}`"
        )
    return issue_date


def _stored_products(
    lake: LakeFS, issue_date: date, zones: list[str] | None
) -> tuple[pd.Timestamp, ProductForecast]:
    """The issue instant and products of a stored issue, the forward view recomputed against the
    forwards published by that instant (forecast_store.read_issued_products); MissingData saying how
    to re-issue an issue stored without its products."""
    from forecasting.lake.forecast_store import issued_at_of, read_issued_products

    issued_at = issued_at_of(lake, issue_date)
    try:
        return issued_at, read_issued_products(lake, issue_date, issued_at, zones)
    except MissingData:
        reissue = f"re-issue it with `spotcast forecast --as-of {issued_at:%Y-%m-%dT%H:%M}`"
        raise MissingData(f"the issue of {issue_date} was stored without its products: {reissue}") from None


def _run_products(args: argparse.Namespace) -> int:
    """Per zone, the product table of one stored issue in the desk's language (see product_tables)."""
    from forecasting.products import KIND, probability_above
    from forecasting.reports.product_tables import (
        FORWARD_LEGEND,
        NO_FORWARD,
        PRODUCT_LEGEND,
        has_forwards,
        render_zone,
    )

    settings = _settings(args)
    if args.out:
        check_destination(args.out)
    lake = LakeFS.of(settings)
    issue_date = _stored_issue(settings, lake, args.as_of)
    issued_at, products = _stored_products(lake, issue_date, args.zones)
    if args.above is not None and products.samples.shape[1] == 0:
        raise MissingData(
            f"the issue of {issue_date} was stored without product samples, which P(settle > X) needs: "
            f"re-issue it with `spotcast forecast --as-of {issued_at:%Y-%m-%dT%H:%M}`"
        )
    shown = products.table[KIND].isin(args.kinds or KINDS).to_numpy()
    view = products.table[shown].reset_index(drop=True)
    p_above = None if args.above is None else probability_above(products, args.above)[shown]
    print(f"products of the issue of {issue_date} (issued {issued_at:%Y-%m-%d %H:%M} UTC)")
    for zone in dict.fromkeys(view["zone"]):
        print(f"\n{render_zone(view, zone, args.above, p_above)}")
    print(f"\n{PRODUCT_LEGEND}")
    print(FORWARD_LEGEND if has_forwards(view) else NO_FORWARD)
    if args.out:
        print(f"written to {_export_products(settings, lake, issue_date, args, view, p_above)}")
    return EXIT_OK


def _export_products(
    settings: Settings,
    lake: LakeFS,
    issue_date: date,
    args: argparse.Namespace,
    view: pd.DataFrame,
    p_above: np.ndarray | None,
) -> Path:
    """`products --out`: the product table as .csv/.parquet, or the issue as an .xlsx workbook (its
    hourly forecast per zone and weekly, these products, P(settle > X) with --above)."""
    from forecasting.reports.export import export_table, is_workbook

    if not is_workbook(args.out):
        table = view if p_above is None else view.assign(**{_above_column(args.above): p_above})
        return export_table(table, args.out)
    from forecasting.lake.forecast_store import read_forecast
    from forecasting.reports.workbook import write_workbook

    forecast = read_forecast(lake, issue_date, args.zones)
    above = None if p_above is None else (args.above, p_above)
    return write_workbook(args.out, forecast, view, settings.zone_timezones, above, issue_date)


def _above_column(level: float) -> str:
    """The export column of P(settle > level): a name a spreadsheet and DuckDB take as it is."""
    return f"p_settle_above_{level:g}".replace("-", "minus_").replace(".", "_")


def _run_forwards_land(args: argparse.Namespace) -> int:
    from forecasting.lake.forward_store import land_forwards

    landed = land_forwards(load_settings(args.config), args.files)
    days = landed.trade_dates
    span = f"{days[0]}" if len(days) == 1 else f"{days[0]} … {days[-1]} ({len(days)})"
    print(f"forwards: {landed.rows_new} row(s) new, {landed.rows_unchanged} unchanged; trade date(s) {span}")
    return EXIT_OK


def _run_forwards_show(args: argparse.Namespace) -> int:
    from forecasting.forwards import DELIVERY_END, DELIVERY_START, product_of_period
    from forecasting.lake.forward_store import read_forwards

    settings = _settings(args)
    forwards = read_forwards(LakeFS.of(settings), args.as_of, args.zones)
    known = f"published by {args.as_of:%Y-%m-%d %H:%M} UTC" if args.as_of is not None else "landed"
    if forwards.empty:
        print(f"no forwards {known}: land the desk's file with `spotcast forwards land FILE`")
        return EXIT_OK
    products = [
        product_of_period(start, end, settings.products.custom) or f"{start}…{end}"
        for start, end in zip(forwards[DELIVERY_START], forwards[DELIVERY_END], strict=True)
    ]
    table = forwards.assign(product=products)[
        [
            "zone",
            "load",
            "product",
            DELIVERY_START,
            DELIVERY_END,
            "price",
            "quoted_as",
            "trade_date",
            "source",
        ]
    ]
    print(f"{len(table)} forward(s) {known}, the newest settlement per product:")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return EXIT_OK


def _run_backtest(args: argparse.Namespace) -> int:
    _settings(args)
    if args.end <= args.start:
        raise UsageError(f"--end {args.end} is not after --start {args.start}: no origin to backtest")
    _begin_run(args)
    from flows.cluster import run_on_cluster
    from flows.modelling import backtest_flow

    result = run_on_cluster(
        backtest_flow,
        args.workers,
        args.dask_address,
        config=args.config,
        start=args.start,
        end=args.end,
        retrain_every=args.retrain_every,
        zones=args.zones,
    )
    print(result.to_markdown())
    return EXIT_OK


def _run_tune(args: argparse.Namespace) -> int:
    if args.show:
        from forecasting.tuning.report import render
        from forecasting.tuning.study import open_study

        settings = load_settings(args.config)
        print(render(open_study(settings, resume=False), settings.tune.seed))
        return EXIT_OK
    _check_as_of(load_settings(args.config), args)  # the best trial is retrained as of then, hours later
    _begin_run(args)
    from flows.tune import run_tune

    result = run_tune(
        args.config, args.workers, args.dask_address, args.trials, args.timeout, args.retrain, args.as_of
    )
    print(result.summary)
    print("plots: " + ", ".join(result.plots) if result.plots else "no plots yet")
    if result.retrained is not None:
        trained = result.retrained
        print(
            f"best trial retrained as run {trained.run_id} ({trained.model_id}): "
            f"{'promoted' if trained.promoted else 'not promoted'}: {trained.decision}"
        )
    return EXIT_OK


def _run_models_list(args: argparse.Namespace) -> int:
    """The registry's runs (forecasting.model.listing): a table that fits 120 columns, --wide or --json.
    An unreadable promotion history leaves the champion unmarked (said on stderr, exit 3): this
    listing is how the champion is named again."""
    import json

    from forecasting.lake.files import CorruptFile
    from forecasting.model import listing
    from forecasting.model.registry import NoChampion, champion, list_runs, promotions, search_runs

    settings = load_settings(args.config)
    lake = LakeFS.of(settings)
    everything = list_runs(lake)
    runs = search_runs(everything, args.where, args.sort, args.desc)
    current, former, since, unreadable = None, set(), None, False
    try:
        newest = champion(lake)
        current, since = newest.run_id, newest.as_of
        former = {p.run_id for p in promotions(lake)} - {current}
    except NoChampion:
        pass
    except CorruptFile as exc:
        print(f"spotcast: {exc}", file=sys.stderr)
        unreadable = True
    code = EXIT_DEGRADED if unreadable else EXIT_OK  # as `status` with a file it cannot read
    if args.json:
        print(json.dumps(listing.run_records(runs, current, former), indent=2, default=str))
        return code
    if everything.empty:
        print(f"no training runs in the registry of {settings.lake_root}: `spotcast train` records one")
        return code
    if runs.empty:
        print(f"none of the {len(everything)} training runs match {' and '.join(args.where or [])}")
        return code
    render = listing.wide_table if args.wide else listing.compact_table
    print(render(runs, current, former))
    if unreadable:
        print("no champion marked: the promotion history cannot be read (said above)")
    else:
        print(listing.legend(current, since, former, set(runs["run_id"])))
    return code


def _run_models_promote(args: argparse.Namespace) -> int:
    from forecasting.jobs.ingest import resolve_as_of
    from forecasting.model.registry import promote

    settings = load_settings(args.config)
    as_of = resolve_as_of(settings, args.as_of)
    champion = promote(LakeFS.of(settings), args.run_id, args.reason, as_of)
    print(f"champion from {as_of} on: {champion.model_id} (run {champion.run_id}): {champion.reason}")
    return EXIT_OK


def _run_lineage(args: argparse.Namespace) -> int:
    from forecasting.lineage import lineage

    settings = load_settings(args.config).with_zones([args.zone])  # an unknown zone is a UsageError
    print(lineage(settings, args.issue_date, args.zone).render())
    return EXIT_OK


def _run_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)  # a bad or missing configuration fails here, before Prefect starts
    _prefect_defaults(args.config)
    from flows.serve import serve

    with _api_beside(args, settings):  # a bad token or a taken port fails here, before Prefect starts
        serve(config=args.config, host=args.host, port=args.port, start_server=args.start_server)
    return EXIT_OK


def _api_beside(args: argparse.Namespace, settings: Settings) -> contextlib.AbstractContextManager[object]:
    """`serve`'s HTTP API (forecasting/api.py) on --host:--api-port while it serves, unless --no-api."""
    if not args.api:
        return contextlib.nullcontext()
    from forecasting.api import api_in_background

    return api_in_background(settings, args.host, args.api_port)


def _run_alerts(args: argparse.Namespace) -> int:
    """The daily run's alerts (flows/alerts.py) on the Prefect server of PREFECT_API_URL, else of
    `[prefect] api_url`, else of the active Prefect profile, for the daily deployment it holds."""
    settings = load_settings(args.config)
    _prefect_defaults(args.config)
    from prefect.settings import PREFECT_API_URL

    from flows.alerts import set_up_deployed_alerts
    from flows.servers import reporting_to
    from forecasting.config import ConfigError

    api_url = os.environ.get("PREFECT_API_URL") or settings.prefect.api_url or PREFECT_API_URL.value()
    if not api_url:
        raise ConfigError(
            "no Prefect server to set the alerts up on: set PREFECT_API_URL (or [prefect] api_url) to the "
            "server of your deployments, e.g. http://127.0.0.1:4200/api"
        )
    with reporting_to(api_url):
        setup = set_up_deployed_alerts(args.config)
    if not setup.automations:
        print(f"alerts off on {api_url}: {setup.reason}")
    else:
        print(f"alerts on {api_url}: {', '.join(setup.automations)}")
    return EXIT_OK


def _run_api(args: argparse.Namespace) -> int:
    """The read-only HTTP API until Ctrl-C or SIGTERM (exit 0 then, as `serve`)."""
    settings = load_settings(args.config)
    from forecasting.api import run_api

    run_api(settings, args.host, args.port)
    return EXIT_OK


def _run_status(args: argparse.Namespace) -> int:
    return _print_lake(args)


def _run_check(args: argparse.Namespace) -> int:
    """Every corrupt lake file (exit 1 when there is one) and the holes per zone × series."""
    from forecasting.ingest.repair import describe_holes, find_holes
    from forecasting.jobs.ingest import resolve_as_of
    from forecasting.lake.check import check_files

    settings = _settings(args)
    lake = LakeFS.of(settings)
    corrupt = check_files(lake)
    as_of = resolve_as_of(settings, args.as_of)
    holes, _ = find_holes(settings, lake, as_of)
    print(f"lake {settings.lake_root}, as of {as_of:%Y-%m-%d %H:%M} UTC")
    print(f"{len(corrupt)} corrupt file(s)" + (":" if corrupt else ""))
    for problem in corrupt:
        print(f"  {lake.relative(problem.path)}: {problem.reason}")
    print(f"{len(holes)} hole(s) against the publication rules" + (":" if holes else ""))
    for line in describe_holes(holes):
        print(f"  {line}")
    if corrupt or holes:
        print("`spotcast backfill --repair` sets corrupt series files aside and pulls the holes again")
    if corrupt:
        print(f"spotcast: {len(corrupt)} corrupt lake file(s), listed above", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


# Commands that run a Prefect flow: they report to the Prefect server they were told of, else to one
# of their own (`_choose_server`).
FLOW_COMMANDS = ("daily", "backfill", "train", "forecast", "backtest", "tune")


_PROCESS_SCOPE = contextlib.ExitStack()  # held until the process exits


def _prefect_defaults(config: str | None) -> None:
    """Prefect's settings for this command, before Prefect is imported. PREFECT_HOME, unless the
    environment sets it: `.prefect/` in the configuration's project (`forecasting.config.project_of`),
    next to its data, so that checkouts sharing one environment keep their run history and their
    `serve` record apart; then Spotcast's other defaults (`flows.defaults.apply_prefect_defaults`)."""
    if not os.environ.get("PREFECT_HOME"):
        from forecasting.config import default_config, project_of

        os.environ["PREFECT_HOME"] = str(project_of(config or default_config()) / ".prefect")
    from flows.defaults import apply_prefect_defaults

    apply_prefect_defaults()


def _choose_server(args: argparse.Namespace) -> None:
    """The Prefect server the run reports to, for the rest of the process: only one the user named
    or started, else a temporary one of its own (`flows.servers.point_runs_at_server`). Called once
    the command's input is checked (`_begin_run`)."""
    _prefect_defaults(args.config)
    from flows.servers import point_runs_at_server

    point_runs_at_server(load_settings(args.config), _PROCESS_SCOPE)


# Commands whose runs keep their full log in the lake (logs/<date>/<command>-<time>.log).
LOGGED_COMMANDS = ("daily", "backfill", "train", "forecast", "backtest", "tune")


@contextlib.contextmanager
def _run_console(args: argparse.Namespace, display: Console) -> Iterator[None]:
    """Progress bars (on a terminal) for the command, and for a run its log file in the lake, opened
    when the run starts (`_begin_run`, after its input is checked): a refused command leaves none."""
    with contextlib.ExitStack() as stack:
        if args.command in LOGGED_COMMANDS and not getattr(args, "show", False):  # `tune --show` only reads

            def open_run_log() -> None:
                args.begin_run = None  # once
                lake = LakeFS.of(load_settings(args.config))
                path = stack.enter_context(console.run_log(lake, args.command))
                if path is not None:  # None: the log file could not be created (said on the console)
                    shown = lake.shown(path)
                    logging.getLogger("spotcast").info("spotcast %s: full log in %s", args.command, shown)

            args.begin_run = open_run_log
        with console.session(display):  # closed before the run log, as the log's stack unwinds
            yield


def _begin_run(args: argparse.Namespace) -> None:
    """The run starts (its input was checked and accepted): from here on it keeps its log in the
    lake. A command refused before this point writes nothing there, not even a log."""
    begin = getattr(args, "begin_run", None)
    if begin is not None:
        begin()
    if args.command in FLOW_COMMANDS:  # likewise, a refused command starts no Prefect server
        _choose_server(args)


# The stop signal the command got (SIGTERM or SIGINT), while `main` runs.
_STOP_SIGNAL: list[int] = []


def _on_stop_signal(signum: int, _frame: object) -> None:
    """SIGTERM (systemd, kill) and SIGINT (Ctrl-C): every pull ends now (no retry wait sleeps on),
    and the command unwinds from where it is (a landing removes its temporary files, the lake lock
    is released, the temporary Prefect server is stopped at exit), to the one line `main` prints.
    During a flow run Prefect's own SIGTERM handler raises instead (TerminationSignal), and the
    flows stop the pulls (`flows.ingest_tasks.pulls_stop_with_the_run`)."""
    stop_pulls()
    _STOP_SIGNAL.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _stopped_by_signals(command: str) -> Iterator[None]:
    """`_on_stop_signal` for SIGTERM and SIGINT while inside (main thread only); restored after.
    `serve` keeps Python's SIGINT handler: Prefect's runner (asyncio) shuts down on it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _STOP_SIGNAL.clear()
    signals = (signal.SIGTERM,) if command == "serve" else (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_signal_of(exc: BaseException) -> int | None:
    """The signal that stopped the command, when `exc` is how it unwound; None for anything else."""
    if _STOP_SIGNAL:
        return _STOP_SIGNAL[0]
    if isinstance(exc, KeyboardInterrupt):
        return signal.SIGINT
    termination = getattr(sys.modules.get("prefect.exceptions"), "TerminationSignal", None)
    if termination is not None and isinstance(exc, termination):
        return exc.signal
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    display = Console(stderr=True)
    console.configure(args.verbose, display)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        with _stopped_by_signals(args.command), _run_console(args, display):
            code = handler(args)
    except SpotcastError as exc:
        print(f"spotcast: {exc}", file=sys.stderr)
        return exc.exit_code
    except BaseException as exc:  # KeyboardInterrupt, SystemExit, Prefect's TerminationSignal
        signum = _stop_signal_of(exc)
        if signum is None:
            raise
        return _stopped(signum)
    # A stop the run absorbed (a library that caught the exception) is still a stop.
    return _stopped(_STOP_SIGNAL[0]) if _STOP_SIGNAL and args.command != "serve" else code


def _stopped(signum: int) -> int:
    print(
        f"spotcast: stopped by {signal.Signals(signum).name}; what had landed stays, a re-run "
        "continues (backfill resumes after the newest landed hour)",
        file=sys.stderr,
    )
    return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
