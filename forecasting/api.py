"""The read-only HTTP API: the lake's forecasts, products, track-record scores, lineage and feed status
as JSON (and CSV where the answer is a table), for the desk's own tools (a spreadsheet's web query,
a trading system, a dashboard).

    spotcast api [--host 127.0.0.1] [--port 8000]     also started by `spotcast serve` (--no-api)
    uvicorn --factory forecasting.api:create_app      the same app under a server of your own

    GET /health                       200 while the lake can be listed (no token needed)
    GET /issues                       the stored (whole) issues, oldest first
    GET /forecast?zone=NO1&as_of=…    the hourly forecast (mean, deciles) of the latest or an as-of issue
    GET /products?zone=…&kind=week    the calendar products next to the forwards (forward view)
    GET /scores?as_of=…               the issue's model scored on its delivered past forecasts
    GET /lineage?zone=NO1&as_of=…     forecast → model → training run → data → feed pulls
    GET /status?zone=…                rows and newest hour per zone × series; the issue's input status
    GET /docs, /openapi.json          the OpenAPI description (no lake data, no token needed)

`as_of` is what `spotcast products --as-of` takes: a date (YYYY-MM-DD, the issue date) or an ISO
date-time (naive is UTC), whose local date on the schedule's clock is the issue date; without it the
latest issue. CSV with `?format=csv` or `Accept: text/csv`. Numbers are rounded to 4 decimals, times
are UTC (ISO 8601, `Z`), `local_time` is the zone's wall clock with its offset. A bad parameter is a
4xx with `{"detail": "<one line>"}`: 422 malformed, 404 an unknown zone or an issue not stored (the
line names what is), 401 a missing or wrong token, 503 an issue being rewritten or a lake that
cannot be read.

The token: when SPOTCAST_API_TOKEN is set, every endpoint but /health, /docs and /openapi.json
needs `Authorization: Bearer <token>`, compared in constant time (hmac.compare_digest). It is never
logged nor echoed; the access log (`-v`) has the request line only.

Reading a lake that is being written. `forecast_store.write_forecast` stores an issue in one atomic
write: every file goes to a temporary first, then each is renamed over its final name, in order: the
zone files of the hourly view, then `forecast_inputs`, then paths and products (on an object store
one PUT each, in the same order). Hence:

* an issue is listed only once its `forecast_inputs` file exists: that file lands after every zone
  file of its write, so an issue whose first write is still in flight is not listed, and not served.
  The list is read once per request, and every read of the request resolves against it;
* a re-issue of a date replaces its files one by one, so a reader can meet some files of the old write
  and some of the new. Every file read for an answer must carry the same issue instant (and model,
  where the file holds it) as the issue's `forecast_inputs`; on a mismatch, or a file gone between
  listing and reading, the issue is read again (up to READ_TRIES times, READ_WAIT_S apart) and the
  answer is 503 "being rewritten" if no whole issue was read.

A re-issue at the very same instant with the same model cannot be told apart this way; it rewrites
the same forecast.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import signal
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

import pandas as pd
import uvicorn
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from forecasting.clock import as_utc
from forecasting.config import ConfigError, Settings, load_settings
from forecasting.errors import LakeError, MissingData, SpotcastError
from forecasting.evaluation.metrics import METRIC_COLUMNS
from forecasting.evaluation.record_scores import score_track_record
from forecasting.lake.files import LakeFS
from forecasting.lake.forecast_store import (
    DATA_FILE,
    FORECAST_INPUTS,
    ISSUE_DATE,
    issue_date_of,
    issue_dates,
    read_forecast,
    read_forecast_inputs,
    read_issued_products,
)
from forecasting.lake.series_store import CURATED, LakeScan, read_series, scan_lake
from forecasting.lake.track_record import LakeTrackRecord
from forecasting.products import KIND, KINDS, ProductForecast, probability_above
from forecasting.schema import ISSUED_AT, MODEL_ID, PRICE, SERIES_UNITS, ZONE

log = logging.getLogger("spotcast.api")

API_TOKEN_ENV = "SPOTCAST_API_TOKEN"
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
READ_TRIES, READ_WAIT_S = 20, 0.1  # an issue being rewritten: read again for up to ~2 s
DECIMALS = 4
SCORE_CACHE = 16  # scored issues kept (scoring reads the model's whole track record)
FROM_ENVIRONMENT = "<from the environment>"  # create_app's default token: SPOTCAST_API_TOKEN
JSON, CSV = "application/json", "text/csv"
LOOPBACK = ("127.0.0.1", "::1", "localhost")

T = TypeVar("T")


class ApiError(SpotcastError):
    """The API could not start (its address cannot be listened on; exit code 1)."""


class BeingWritten(Exception):
    """The issue's files come from two writes (a re-issue in flight) on every try."""


def api_token() -> str | None:
    """The bearer token from SPOTCAST_API_TOKEN (None when unset); ConfigError when it is set but
    blank, which would otherwise open an API its operator meant to close."""
    value = os.environ.get(API_TOKEN_ENV)
    if value is None:
        return None
    if not value.strip():
        raise ConfigError(f"{API_TOKEN_ENV} is set but empty: set a token, or unset it for an open API")
    return value.strip()


# --- Reading the lake ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    """One stored issue read whole: its hourly view (all its zones) and input status, both of one write."""

    issue_date: date
    issued_at: pd.Timestamp
    model_id: str
    forecast: pd.DataFrame
    inputs: pd.DataFrame

    @property
    def zones(self) -> list[str]:
        return sorted(self.forecast[ZONE].unique())


def _stamps(frame: pd.DataFrame) -> set[tuple[pd.Timestamp, str | None]]:
    model = frame[MODEL_ID] if MODEL_ID in frame.columns else pd.Series([None] * len(frame))
    return {(pd.Timestamp(t), m) for t, m in zip(frame[ISSUED_AT], model, strict=True)}


def whole_issues(lake: LakeFS) -> list[date]:
    """The issue dates whose write is complete (their `forecast_inputs` file exists: see the module
    docstring), oldest first: one listing of each area, also on an object store."""
    area = lake.path(FORECAST_INPUTS)
    with_inputs = set()
    if lake.exists(area):
        for path in lake.fs.find(area, withdirs=False):
            folder, _, name = path.rpartition("/")
            part = folder.rsplit("/", 1)[-1]
            if name == DATA_FILE and part.startswith(f"{ISSUE_DATE}="):
                with contextlib.suppress(ValueError):
                    with_inputs.add(date.fromisoformat(part.split("=", 1)[1]))
    return [d for d in issue_dates(lake) if d in with_inputs]


class LakeReader:
    """The API's reads of one lake, through the library's own functions (forecast_store,
    forward_store, track record, lineage, series_store), each issue read whole (`read_issue`)."""

    def __init__(self, settings: Settings, lake: LakeFS | None = None) -> None:
        self.settings = settings
        self.lake = lake or LakeFS.of(settings)
        self._scores: OrderedDict[tuple, pd.DataFrame | None] = OrderedDict()
        self._scores_lock = threading.Lock()
        self._scan: tuple[tuple, LakeScan] | None = None  # (the curated files' listing, its scan)

    def _consistent(self, issue_date: date, read: Callable[[], T]) -> T:
        for attempt in range(READ_TRIES):
            try:
                return read()
            except (BeingWritten, FileNotFoundError):
                if attempt + 1 < READ_TRIES:
                    time.sleep(READ_WAIT_S)
        raise BeingWritten(f"the issue of {issue_date} is being rewritten: retry in a few seconds")

    def _read_issue_once(self, issue_date: date) -> Issue:
        inputs = read_forecast_inputs(self.lake, issue_date)
        forecast = read_forecast(self.lake, issue_date)
        # A model without covariates has no input rows: its zone files must still agree.
        stamps = _stamps(inputs) or _stamps(forecast)
        if len(stamps) != 1 or _stamps(forecast) != stamps:
            raise BeingWritten(issue_date)
        [(issued_at, model_id)] = stamps
        return Issue(issue_date, issued_at, str(model_id), forecast, inputs)

    def read_issue(self, issue_date: date) -> Issue:
        """The issue of `issue_date` (listed by `whole_issues`), every file of one write; BeingWritten
        when a re-issue kept it mixed on every try."""
        return self._consistent(issue_date, lambda: self._read_issue_once(issue_date))

    def read_products(self, issue_date: date, zones: list[str] | None) -> tuple[Issue, ProductForecast]:
        """The issue and its products (a ProductForecast) of one write, the forward view recomputed
        from the stored samples against the forwards published by the issue instant as `spotcast
        products` shows them (forecast_store.read_issued_products); an issue stored without samples
        keeps the view it was stored with. MissingData when the issue was stored without products."""

        def read() -> tuple[Issue, ProductForecast]:
            issue = self._read_issue_once(issue_date)
            products = read_issued_products(self.lake, issue_date, issue.issued_at, zones)
            if any(stamp != issue.issued_at for stamp, _ in _stamps(products.table)):
                raise BeingWritten(issue_date)
            return issue, products

        return self._consistent(issue_date, read)

    def scan(self, zones: list[str] | None) -> LakeScan:
        """`series_store.scan_lake` of `zones` (None: all): rows, first and newest hour per zone ×
        series, and the files that cannot be read. It reads every curated file's hours, so the whole
        lake's scan is kept until the listing of the curated files (path, size, time) changes."""
        folder = self.lake.path(CURATED)
        listing = self.lake.fs.find(folder, withdirs=False, detail=True) if self.lake.exists(folder) else {}
        key = tuple(
            sorted(
                (
                    path,
                    info.get("size"),
                    str(info.get("mtime") or info.get("LastModified") or info.get("ETag")),
                )
                for path, info in listing.items()
            )
        )
        kept = self._scan
        if kept is None or kept[0] != key:
            kept = self._scan = (key, scan_lake(self.lake))
        scan = kept[1]
        if not zones:
            return scan
        parts = tuple(f"/{ZONE}={zone}/" for zone in zones)
        table = scan.table[scan.table[ZONE].isin(zones)].reset_index(drop=True)
        return LakeScan(
            table, [problem for problem in scan.unreadable if any(p in problem.path for p in parts)]
        )

    def scores(self, issue: Issue) -> pd.DataFrame | None:
        """The issue's model scored as the daily report scores it (`jobs.reporting.scored_track_record`):
        its raw past forecasts in the track record whose four weeks were delivered by the issue
        instant, on the prices known then, next to the seasonal naive. None when none was delivered.
        Kept per (model, issue instant, stored track-record issues): scoring reads them all."""
        track_record = LakeTrackRecord(self.lake)
        key = (issue.model_id, issue.issued_at, tuple(track_record.issues(issue.model_id)))
        with self._scores_lock:
            if key in self._scores:
                self._scores.move_to_end(key)
                return self._scores[key]
        timezones = self.settings.zone_timezones
        track = track_record.read(issue.model_id)
        track = track[track[ZONE].isin(list(timezones))]
        table = None
        if not track.empty:
            start = pd.Timestamp(track[ISSUED_AT].min()) - pd.Timedelta(days=8)  # the naive's last week
            prices = read_series(
                self.lake, series=[PRICE], zones=list(timezones), start=start, as_of=issue.issued_at
            )
            table = score_track_record(track, prices, timezones)
        with self._scores_lock:
            self._scores[key] = table
            while len(self._scores) > SCORE_CACHE:
                self._scores.popitem(last=False)
        return table


# --- Parameters --------------------------------------------------------------------------------


class Problem(Exception):
    """An answer other than 200, with its one-line reason."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def _listing(dates: list[date]) -> str:
    shown = [d.isoformat() for d in dates]
    if len(shown) <= 6:
        return ", ".join(shown)
    return f"{len(shown)} from {shown[0]} to {shown[-1]}, the newest {', '.join(shown[-3:])}"


def resolve_issue(settings: Settings, stored: list[date], as_of: str | None) -> date:
    """The issue date `as_of` asks for (the latest stored when None) among `stored`: Problem 422
    when malformed, 404 naming the stored issues when that issue is not among them."""
    if not stored:
        raise Problem(
            404, f"the lake holds no forecast yet: run `spotcast daily` (lake {settings.lake_root})"
        )
    if as_of is None:
        return stored[-1]
    text, which = as_of.strip(), ""
    try:
        issue_date = date.fromisoformat(text) if len(text) == 10 else None
        if issue_date is None:
            stamp = as_utc(datetime.fromisoformat(text))
            issue_date = issue_date_of(stamp, settings.schedule.timezone)
            which = f" (the issue date of {stamp:%Y-%m-%d %H:%M} UTC on {settings.schedule.timezone} time)"
    except ValueError:
        hint = " (a '+' in a URL must be sent as %2B)" if " " in text else ""
        raise Problem(
            422,
            f"as_of: not an ISO date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[Z|±HH:MM]): {as_of!r}{hint}",
        ) from None
    if issue_date not in stored:
        raise Problem(
            404, f"no forecast issued on {issue_date}{which} is stored; stored issues: {_listing(stored)}"
        )
    return issue_date


def check_zones(
    settings: Settings, zones: list[str] | None, held: list[str] | None = None
) -> list[str] | None:
    """`zones` (None: all), each a configured zone and, when `held` is given, one the issue holds:
    Problem 404 naming the known ones otherwise."""
    if not zones:
        return None
    unknown = [zone for zone in zones if zone not in settings.zone_names]
    if unknown:
        raise Problem(
            404,
            f"unknown zone {', '.join(unknown)}: the configured zones are {', '.join(settings.zone_names)}",
        )
    missing = [zone for zone in zones if held is not None and zone not in held]
    if missing:
        raise Problem(
            404, f"the issue holds no forecast of {', '.join(missing)}: it holds {', '.join(held or [])}"
        )
    return list(dict.fromkeys(zones))


def _accepts(accept: str) -> str | None:
    """JSON or CSV, whichever the Accept header ranks first (JSON for */*); None when neither."""
    ranked = []
    for order, item in enumerate(accept.split(",")):
        media, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                with contextlib.suppress(ValueError):
                    quality = float(value)
        offered = {JSON: JSON, CSV: CSV, "application/*": JSON, "text/*": CSV, "*/*": JSON}.get(media.lower())
        if offered and quality > 0:
            ranked.append((-quality, order, offered))
    return min(ranked)[2] if ranked else None


def wants_csv(format: str | None, accept: str | None) -> bool:
    """`?format=` when given (json or csv, else Problem 422), else the Accept header."""
    if format is not None:
        if format.lower() not in ("json", "csv"):
            raise Problem(422, f"format: json or csv, not {format!r}")
        return format.lower() == "csv"
    return _accepts(accept or "") == CSV


# --- Answers -----------------------------------------------------------------------------------


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Times as ISO strings (UTC with Z), dates as YYYY-MM-DD, floats rounded: what JSON and CSV show."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            out[column] = values.dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        elif pd.api.types.is_datetime64_dtype(values.dtype):
            out[column] = values.dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif values.dtype == object:
            out[column] = values.map(_plain_value)
        elif pd.api.types.is_float_dtype(values.dtype):
            out[column] = values.round(DECIMALS)
    return out


def _plain_value(value: object) -> object:
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        return stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") if stamp.tzinfo else stamp.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _stamp(value: pd.Timestamp) -> str:
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def table_json(frame: pd.DataFrame) -> str:
    """A frame as a JSON array of row objects (NaN and None as null)."""
    return _plain(frame).to_json(orient="records", double_precision=DECIMALS, force_ascii=False)


def json_answer(meta: dict[str, Any], **tables: pd.DataFrame) -> Response:
    """One JSON object: `meta`, then each table as an array of rows (encoded by pandas, not row by row)."""
    parts = [f"{json.dumps(k)}: {json.dumps(v, default=str, ensure_ascii=False)}" for k, v in meta.items()]
    parts += [f"{json.dumps(name)}: {table_json(frame)}" for name, frame in tables.items()]
    return Response("{" + ", ".join(parts) + "}", media_type=JSON)


def csv_answer(frame: pd.DataFrame, name: str) -> Response:
    body = _plain(frame).to_csv(index=False)  # floats already rounded to DECIMALS
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(table_json(frame))


def _maybe_json(text: object) -> object:
    if isinstance(text, str) and text[:1] in "{[":
        with contextlib.suppress(ValueError):
            return json.loads(text)
    return text


# --- The app -----------------------------------------------------------------------------------

UNIT = SERIES_UNITS[PRICE]
RUN_FIELDS_LEFT_OUT = ("config",)  # the whole configuration text of the run: `spotcast models list --json`


class ProblemBody(BaseModel):
    detail: str


# Module level, not in create_app: FastAPI resolves the (postponed) annotations in the module's globals.
_bearer = HTTPBearer(auto_error=False, description=f"the server's {API_TOKEN_ENV}")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
Zones = Annotated[list[str] | None, Query(description="zones (repeat for several); default all")]
AsOf = Annotated[
    str | None, Query(description="issue date YYYY-MM-DD, or an ISO date-time; default the latest")
]
Format = Annotated[str | None, Query(description="json or csv (default: the Accept header, else JSON)")]
Kinds = Annotated[list[str] | None, Query(description="day, week, bow, month, bom, custom; default all")]
Above = Annotated[float | None, Query(description="add P(settle > above EUR/MWh) per product")]
OneZone = Annotated[str, Query(description="one zone, e.g. NO1")]


def create_app(settings: Settings | None = None, *, token: str | None = FROM_ENVIRONMENT) -> FastAPI:
    """The API over the lake of `settings` (default: the default configuration). `token`: the bearer
    token every endpoint but /health and the docs asks for; by default SPOTCAST_API_TOKEN (`api_token`),
    None for an open API."""
    settings = settings or load_settings()
    token = api_token() if token is FROM_ENVIRONMENT else token
    reader = LakeReader(settings)

    async def authorized(credentials: Credentials) -> None:  # async: no thread for a string compare
        if token is None:
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise Problem(
                401,
                "this API needs 'Authorization: Bearer <token>' (the server's SPOTCAST_API_TOKEN)",
                challenge,
            )
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise Problem(401, "wrong bearer token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    guarded = [Depends(authorized)] if token is not None else []
    problems = {
        status: {"model": ProblemBody, "description": what}
        for status, what in {
            401: "no token, or a wrong one (only when SPOTCAST_API_TOKEN is set)",
            404: "an unknown zone, or no such issue: the reason names what exists",
            422: "a malformed parameter",
            503: "the issue is being rewritten (retry), or the lake cannot be read",
        }.items()
    }
    tabular = {
        200: {
            "content": {JSON: {}, CSV: {}},
            "description": "JSON, or CSV (`?format=csv`, `Accept: text/csv`)",
        }
    }

    app = FastAPI(
        title="Spotcast",
        version=_version(),
        summary="Read-only day-ahead price forecasts, products, scores, lineage and feed status.",
        description=(
            "Times are UTC (ISO 8601); prices in EUR/MWh; numbers rounded to 4 decimals. `as_of`: an issue "
            "date (YYYY-MM-DD) or an ISO date-time (naive is UTC) whose local date on the schedule's clock "
            "is the issue date; default the latest issue. Only whole issues are served."
        ),
    )

    @app.exception_handler(Problem)
    def _problem(_: Request, exc: Problem) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("query", "body"))
        message = str(first.get("msg", "invalid request")).splitlines()[0]
        return JSONResponse({"detail": f"{where}: {message}" if where else message}, status_code=422)

    @app.exception_handler(BeingWritten)
    def _being_written(_: Request, exc: BeingWritten) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(MissingData)
    def _missing(_: Request, exc: MissingData) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=404)

    @app.exception_handler(LakeError)
    def _lake(_: Request, exc: LakeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc).splitlines()[0]}, status_code=503)

    @app.exception_handler(FileNotFoundError)
    def _vanished(_: Request, exc: FileNotFoundError) -> JSONResponse:
        detail = f"a lake file went away while read (being rewritten?): {exc.filename or exc}; retry"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "2"})

    def stored() -> list[date]:
        return whole_issues(reader.lake)  # once per request (see the module docstring)

    @app.get("/health", tags=["service"], responses={503: problems[503]})
    def health() -> JSONResponse:
        """Liveness for a monitor: 200 while the lake can be listed, with the latest whole issue."""
        try:
            issues = whole_issues(reader.lake)
        except (OSError, LakeError) as exc:
            return JSONResponse({"status": "unavailable", "detail": f"the lake cannot be listed: {exc}"}, 503)
        latest = issues[-1].isoformat() if issues else None
        return JSONResponse({"status": "ok", "issues": len(issues), "latest_issue": latest})

    @app.get("/issues", tags=["forecast"], dependencies=guarded, responses={401: problems[401]})
    def issues() -> Any:
        """The stored whole issues (issue dates, local on the schedule's clock), oldest first."""
        dates = [d.isoformat() for d in stored()]
        return json_answer({"issues": dates, "latest": dates[-1] if dates else None})

    @app.get("/forecast", tags=["forecast"], dependencies=guarded, responses={**tabular, **problems})
    def forecast(request: Request, zone: Zones = None, as_of: AsOf = None, format: Format = None) -> Any:
        """The hourly forecast of an issue: per zone and delivery hour (UTC; `local_time` on the zone's
        clock), the mean and the deciles p10 … p90 in EUR/MWh, four weeks (672 hours) ahead."""
        csv = wants_csv(format, request.headers.get("accept"))
        zones = check_zones(settings, zone)
        issue = reader.read_issue(resolve_issue(settings, stored(), as_of))
        zones = check_zones(settings, zones, issue.zones)
        frame = issue.forecast if zones is None else issue.forecast[issue.forecast[ZONE].isin(zones)]
        if csv:
            return csv_answer(frame, f"spotcast-forecast-{issue.issue_date}")
        return json_answer(
            {**_issue_meta(issue), "unit": UNIT, "zones": zones or issue.zones},
            rows=frame.drop(columns=[ISSUED_AT, MODEL_ID]),
        )

    @app.get("/products", tags=["forecast"], dependencies=guarded, responses={**tabular, **problems})
    def products(
        request: Request,
        zone: Zones = None,
        as_of: AsOf = None,
        kind: Kinds = None,
        above: Above = None,
        format: Format = None,
    ) -> Any:
        """The calendar products of an issue (base and peak; mean, p10, p50, p90 of the settlement in
        EUR/MWh) next to the newest forward settlement published by the issue: forward, its
        percentile, P(settle > forward), premium (EUR/MWh and EUR per MW over the period)."""
        csv = wants_csv(format, request.headers.get("accept"))
        zones = check_zones(settings, zone)
        unknown = [k for k in kind or [] if k not in KINDS]
        if unknown:
            raise Problem(422, f"kind: unknown {', '.join(unknown)}; the kinds are {', '.join(KINDS)}")
        issue_date = resolve_issue(settings, stored(), as_of)
        issue, forecast = reader.read_products(issue_date, zones)
        check_zones(settings, zones, issue.zones)
        if above is not None and forecast.samples.shape[1] == 0:
            raise Problem(
                404, f"the issue of {issue_date} was stored without product samples, which `above` needs"
            )
        shown = forecast.table[KIND].isin(kind or KINDS).to_numpy()
        view = forecast.table[shown].reset_index(drop=True)
        if above is not None:
            view = view.assign(p_settle_above=probability_above(forecast, above)[shown])
        if csv:
            return csv_answer(view, f"spotcast-products-{issue_date}")
        meta = {**_issue_meta(issue), "unit": UNIT, "above": above}
        return json_answer(meta, rows=view.drop(columns=[ISSUED_AT]))

    @app.get("/scores", tags=["evaluation"], dependencies=guarded, responses={**tabular, **problems})
    def scores(request: Request, as_of: AsOf = None, format: Format = None) -> Any:
        """The track record of the issue's model, as the daily report shows it: its raw past forecasts
        whose four weeks were delivered by the issue instant, scored on the realised prices next to the
        seasonal naive of the same issues (overall and per horizon week; rMAE < 1 beats the naive;
        raw deciles, before the spread calibration: nominal p10–p90 coverage 0.80). No rows while no
        past forecast is delivered."""
        csv = wants_csv(format, request.headers.get("accept"))
        issue = reader.read_issue(resolve_issue(settings, stored(), as_of))
        table = reader.scores(issue)
        if table is None:
            table = pd.DataFrame(columns=["model", ZONE, "horizon_week", *METRIC_COLUMNS, "issues"])
        if csv:
            return csv_answer(table, f"spotcast-scores-{issue.issue_date}")
        delivered = int(table["issues"].iloc[0]) if len(table) else 0
        return json_answer({**_issue_meta(issue), "delivered_issues": delivered}, rows=table)

    @app.get("/lineage", tags=["evaluation"], dependencies=guarded, responses=problems)
    def lineage(zone: OneZone, as_of: AsOf = None) -> Any:
        """Lineage of a published number: the issue's model, the training run(s) that made it (data
        range and hash, code version, artifact), the input status at issue time and the feed pulls
        whose rows the forecast read."""
        from forecasting.lineage import lineage as lineage_of

        check_zones(settings, [zone])
        issue = reader.read_issue(resolve_issue(settings, stored(), as_of))
        check_zones(settings, [zone], issue.zones)
        found = lineage_of(settings, issue.issue_date, zone)
        if pd.Timestamp(found.issued_at) != issue.issued_at:  # re-issued meanwhile
            raise BeingWritten(f"the issue of {issue.issue_date} is being rewritten: retry in a few seconds")
        runs = found.runs.drop(columns=[c for c in RUN_FIELDS_LEFT_OUT if c in found.runs.columns])
        runs = [{k: _maybe_json(v) for k, v in run.items()} for run in _records(runs)]
        return json_answer(
            {**_issue_meta(issue), "zone": zone, "runs": runs}, inputs=found.inputs, pulls=found.pulls
        )

    @app.get("/status", tags=["service"], dependencies=guarded, responses={**tabular, **problems})
    def status(request: Request, zone: Zones = None, format: Format = None) -> Any:
        """Feed status: what the lake holds per zone × series (rows, first and newest delivery hour,
        as `spotcast status`), lake files that cannot be read, and the latest issue's input status (per
        zone × covariate: the feed's status at issue time, its newest published hour, how it was
        extended). CSV: the per zone × series table."""
        csv = wants_csv(format, request.headers.get("accept"))
        zones = check_zones(settings, zone)
        scan = reader.scan(zones)
        if csv:
            return csv_answer(scan.table, "spotcast-status")
        dates = stored()
        latest: dict[str, Any] | None = None
        if dates:
            issue = reader.read_issue(dates[-1])
            inputs = issue.inputs if zones is None else issue.inputs[issue.inputs[ZONE].isin(zones)]
            latest = {**_issue_meta(issue), "inputs": _records(inputs.drop(columns=[ISSUED_AT, MODEL_ID]))}
        unreadable = [str(problem) for problem in scan.unreadable]
        return json_answer(
            {"lake": settings.lake_root, "unreadable": unreadable, "latest_issue": latest}, series=scan.table
        )

    return app


def _issue_meta(issue: Issue) -> dict[str, Any]:
    return {
        "issue_date": issue.issue_date.isoformat(),
        "issued_at": _stamp(issue.issued_at),
        "model_id": issue.model_id,
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spotcast")
    except PackageNotFoundError:
        return "0"


# --- Serving -----------------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); ApiError in one line when it cannot be."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto IPPROTO_TCP, as getaddrinfo gives it: asyncio sets TCP_NODELAY on the connections of
        # such a socket only (with proto 0 every small answer waits ~40 ms for a delayed ACK).
        sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    except OSError as exc:
        raise ApiError(f"the API cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        return sock
    except OSError as exc:
        sock.close()
        raise ApiError(f"the API cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _server(app: FastAPI) -> uvicorn.Server:
    class Server(uvicorn.Server):
        """uvicorn's server, whose graceful stop on Ctrl-C or SIGTERM is the end of `spotcast api`
        (exit 0): the signal is not raised again in the process once it has stopped, as uvicorn does."""

        def handle_exit(self, sig: int, frame: object) -> None:
            if self.should_exit and sig == signal.SIGINT:  # a second Ctrl-C: stop now
                self.force_exit = True
            self.should_exit = True

    # log_config None: spotcast's console keeps its own logging (the access log shows with -v).
    return Server(uvicorn.Config(app, log_config=None, lifespan="off", timeout_graceful_shutdown=5))


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _announce(settings: Settings, host: str, url: str, token: str | None) -> None:
    log.info("HTTP API at %s (OpenAPI docs at %s/docs), lake %s", url, url, settings.lake_root)
    if token is None and host not in LOOPBACK:
        log.warning(
            "the API listens on %s without a token: anyone who reaches it reads the forecasts (set %s)",
            host,
            API_TOKEN_ENV,
        )


def run_api(settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve the API on host:port until Ctrl-C or SIGTERM (a graceful stop: requests in flight finish).
    ConfigError for a blank SPOTCAST_API_TOKEN, ApiError when the address cannot be listened on."""
    token = api_token()
    app = create_app(settings, token=token)
    sock = _listen(host, port)
    _announce(settings, host, _address(sock), token)
    with sock:
        _server(app).run(sockets=[sock])
    log.info("HTTP API stopped")


@contextlib.contextmanager
def api_in_background(
    settings: Settings, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> Iterator[str]:
    """The API served from a thread while inside (`spotcast serve`); yields its base URL. ConfigError
    or ApiError before anything starts, as `run_api`; stopped gracefully on the way out."""
    token = api_token()
    app = create_app(settings, token=token)
    sock = _listen(host, port)
    url = _address(sock)
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="spotcast-api", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ApiError(f"the API at {url} did not start")
            time.sleep(0.05)
        _announce(settings, host, url, token)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
