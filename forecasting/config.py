"""Typed Spotcast configuration: loaded from TOML once, validated, errors name the bad key and value.

Only secrets come from the environment (`ENTSOE_API_TOKEN`); everything else lives in the file.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date, time
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import fsspec
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from forecasting.errors import ConfigError, UsageError
from forecasting.schema import DERIVED_COVARIATES, SERIES, WEEKLY_SERIES, unit_factors

# The folder of the running code (its git commit is a model's code version). Not where files go:
# a configuration's relative paths are relative to its own project (`project_of`).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_FOLDER, CONFIG_NAME = "configs", "spotcast.toml"
# The configuration shipped with the code (a template; without --config, `default_config` is used).
DEFAULT_CONFIG = PROJECT_ROOT / CONFIG_FOLDER / CONFIG_NAME
TOKEN_ENV = "ENTSOE_API_TOKEN"


def project_of(config: str | Path) -> Path:
    """The folder that the relative paths written in the configuration file `config` are relative
    to: the folder holding it, or the one above when that folder is `configs/`
    (`<checkout>/configs/spotcast.toml` → `<checkout>`, so `data/lake` is `<checkout>/data/lake`;
    `~/study/spotcast.toml` → `~/study`). Never the working directory, never the installed code's."""
    folder = Path(os.path.abspath(config)).parent
    return folder.parent if folder.name == CONFIG_FOLDER else folder


def default_config(start: str | Path | None = None) -> Path:
    """The configuration used without --config: `configs/spotcast.toml` of the project worked in,
    the nearest one in the working directory (`start`) or a folder above it (a checkout, also from
    its `notebooks/`). ConfigError when there is none: the code's own copy would put this user's
    files in the installed code's folder, shared by everyone who runs it."""
    here = Path(os.path.abspath(start if start is not None else Path.cwd()))
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_FOLDER / CONFIG_NAME
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"no configuration: {CONFIG_FOLDER}/{CONFIG_NAME} is in neither {here} nor a folder above it; "
        f"run from a Spotcast checkout, or give one with --config FILE (a copy of {DEFAULT_CONFIG} "
        "writes its lake and models next to itself)"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


def _check_optional_timezone(name: str | None) -> str | None:
    return None if name is None else _check_timezone(name)


@cache
def _timezone_countries() -> dict[str, str]:
    """IANA time zone → ISO 3166 country code, from the time zone database's zone.tab (tzdata)."""
    table = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    rows = (line.split("\t") for line in table.splitlines() if line and not line.startswith("#"))
    return {row[2]: row[0] for row in rows}


def country_of_timezone(timezone: str) -> str | None:
    """The country whose time zone `timezone` is (Europe/Oslo → NO, Europe/Berlin → DE), None for
    zones of no one country (UTC, CET)."""
    return _timezone_countries().get(timezone)


class Zone(_Strict):
    name: str = Field(pattern=r"^[A-Z0-9-]+$")
    eic: str = Field(min_length=16, max_length=16)
    timezone: str
    energy_charts_bzn: str | None = None  # Energy-Charts `bzn` code, when it differs from name
    # Whose public holidays the calendar features mark (ISO 3166 code); default: the time zone's country.
    country: str | None = Field(default=None, validate_default=True)

    _tz = field_validator("timezone")(_check_timezone)

    @field_validator("country")
    @classmethod
    def _holiday_country(cls, value: str | None, info: ValidationInfo) -> str | None:
        timezone = info.data.get("timezone")
        if value is None and timezone is None:
            return None  # the time zone itself is invalid: that error is reported
        value = value or country_of_timezone(timezone)
        if value is None:
            raise ValueError(f"time zone {timezone!r} is no one country's: set country (e.g. 'DE')")
        import holidays  # only when a configuration is validated: `spotcast --help` skips it

        if value not in holidays.list_supported_countries():
            raise ValueError(f"no public holiday calendar for country {value!r} (ISO 3166 codes, e.g. 'DE')")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Publication(_Strict):
    """When a series becomes public.

    day_ahead: values for local delivery day D are published on D-1 at `local_time`.
    after_delivery: each hour is published `lag_hours` after the hour ends.
    weekly: an ISO week's value (a weekly series, stored at the week's start hour) is published on
    `weekday` (0 = Monday) of the following week at `local_time` (NVE: Wednesday 13:00).
    """

    kind: Literal["day_ahead", "after_delivery", "weekly"]
    local_time: time = time(13, 0)
    lag_hours: int = Field(default=1, ge=0)
    weekday: int = Field(default=2, ge=0, le=6)


class SeriesRule(_Strict):
    publication: Publication
    # The feed is stale when its newest hour lags the expected newest hour by more than this.
    staleness_tolerance_hours: int = Field(default=0, ge=0)


class RetryPolicy(_Strict):
    interval_s: float = Field(gt=0)
    backoff: float = Field(ge=1.0)
    max_attempts: int = Field(ge=1)

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (2, 3, ...)."""
        return self.interval_s * self.backoff ** (attempt - 2)


class RetryPolicies(_Strict):
    # Defaults of the reference design (Step Functions retry blocks).
    not_available: RetryPolicy = RetryPolicy(interval_s=3600, backoff=1.0, max_attempts=8)
    site_down: RetryPolicy = RetryPolicy(interval_s=3600, backoff=2.0, max_attempts=5)


# The files a replay source folder may hold, one per zone (the file name is the zone).
HISTORY_SUFFIXES = (".csv", ".parquet", ".xlsx")


def zone_from_filename(path: Path) -> str:
    """The zone a replay source file holds: `NO_1.csv` or `NO1.parquet` → `NO1`."""
    return path.stem.replace("_", "").upper()


class SourceColumn(_Strict):
    """A column of a replay file: the series it holds, and its unit when not the series' own (the
    values are converted: GW → MW, EUR/kWh → EUR/MWh)."""

    series: str
    unit: str | None = None

    @field_validator("series")
    @classmethod
    def _known_series(cls, value: str) -> str:
        if value not in SERIES:
            raise ValueError(f"unknown series {value!r}; known: {list(SERIES)}")
        return value

    @model_validator(mode="after")
    def _convertible_unit(self) -> SourceColumn:
        if self.unit is not None and self.unit not in unit_factors(self.series):
            raise ValueError(
                f"unit {self.unit!r} of {self.series} is not one Spotcast converts; "
                f"known: {list(unit_factors(self.series))}"
            )
        return self


class SourceFormat(_Strict):
    """How the CSV and Excel files of a replay source are read (docs/own_zone.md). Without
    `columns`: the bundled (deepforkit) format — `Price_DA`, `Load_DA`, … and `3/26/2016 0:00`
    stamps, where 0 means missing. With `columns`: the user's own file as it is."""

    # source column (its header) → series, or {series = …, unit = …}
    columns: dict[str, SourceColumn] = Field(default_factory=dict)
    time_column: str | None = None  # default: the first column
    # a strptime format ("%d.%m.%Y %H:%M") or "ISO8601"; default: ISO 8601 with `columns`, else the
    # deepforkit "%m/%d/%Y %H:%M"
    time_format: str | None = None
    # the clock of stamps without an offset: default the zone's time zone (24 rows a local day, or
    # true 23/25-hour days); "UTC" for UTC stamps. Stamps with an offset are read as they say.
    timezone: str | None = None
    missing: tuple[str, ...] = ()  # cell texts that mark a missing value (an empty cell always does)
    zero_is_missing: bool | None = None  # default: true in the deepforkit format, false with `columns`
    separator: str = Field(default=",", min_length=1, max_length=1)
    decimal: str = Field(default=".", min_length=1, max_length=1)
    sheet: str | int = 0  # the sheet of an Excel workbook (.xlsx): its name or number (0 = first)

    _tz = field_validator("timezone")(_check_optional_timezone)

    @field_validator("columns", mode="before")
    @classmethod
    def _series_names(cls, value: object) -> object:
        """`Price = "price_da"` is short for `Price = { series = "price_da" }`."""
        if not isinstance(value, dict):
            return value
        return {name: {"series": c} if isinstance(c, str) else c for name, c in value.items()}

    @field_validator("columns")
    @classmethod
    def _one_column_per_series(cls, value: dict[str, SourceColumn]) -> dict[str, SourceColumn]:
        seen: dict[str, str] = {}
        for name, column in value.items():
            if column.series in seen:
                raise ValueError(f"columns {seen[column.series]!r} and {name!r} both hold {column.series}")
            seen[column.series] = name
        return value

    @property
    def mapped(self) -> bool:
        """A user's own file, described by `columns` (not the deepforkit format)."""
        return bool(self.columns)

    @property
    def zeros_missing(self) -> bool:
        return self.zero_is_missing if self.zero_is_missing is not None else not self.mapped


class FeedConfig(_Strict):
    kind: Literal["replay", "entsoe", "energy_charts", "nve"]
    series: tuple[str, ...]
    enabled: bool = True
    base_url: str | None = None
    source: str | None = None  # replay: bundled Parquet dir, or CSV/Excel files (see `format`)
    format: SourceFormat | None = None  # replay: how its CSV/Excel files are read
    timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("series")
    @classmethod
    def _known_series(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in value if s not in SERIES]
        if unknown:
            raise ValueError(f"unknown series {unknown}; known: {list(SERIES)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        """A feed is asked over HTTP: another scheme (ftp://, file://) would fail every pull as a
        site that is down, retried for hours."""
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            host, _ = parts.hostname, parts.port
        except ValueError as exc:  # an unbalanced [ or a port out of range
            raise ValueError(f"not a URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not host:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. https://api.example.org")
        return value

    @model_validator(mode="after")
    def _replay_has_a_source(self) -> FeedConfig:
        if self.kind == "replay" and not self.source:
            raise ValueError(
                "a replay feed needs `source`: the recorded history to replay (a folder or file)"
            )
        if self.format is not None and self.kind != "replay":
            raise ValueError(f"`format` describes the files of a replay feed; a feed of kind {self.kind!r} takes none")
        if self.format is not None and self.format.mapped:
            mapped = {column.series for column in self.format.columns.values()}
            unmapped = [series for series in self.series if series not in mapped]
            if unmapped:
                raise ValueError(
                    f"series {unmapped} is in no column of format.columns {list(self.format.columns)}; "
                    "map a column to it or drop it from series"
                )
        return self


class Schedule(_Strict):
    daily_at: time = time(14, 0)
    timezone: str = "Europe/Oslo"

    _tz = field_validator("timezone")(_check_timezone)


class History(_Strict):
    start: date = date(2015, 1, 1)
    backfill_chunk_days: int = Field(default=366, ge=1, le=366)


class ModelConfig(_Strict):
    """The forecasting model: DeepARPipeline parameters (validated by the estimator itself)."""

    params: dict[str, Any] = Field(default_factory=dict)
    # A challenger replaces the champion only when its backtest CRPS is lower by this fraction.
    promotion_margin: float = Field(default=0.02, ge=0.0, lt=1.0)
    # The hourly spread stage per zone: each zone's factors shrunk towards the pooled ones with this
    # prior weight in past issues (forecasting/model/calibration.py); None: pooled for every zone.
    zone_prior_issues: float | None = Field(default=None, gt=0.0)


class ParamRange(_Strict):
    """A tuned parameter's range: integers when low and high are, else floats; `step` spaces the
    values (context_length: step = 168); `log` samples on a log scale (learning rates)."""

    low: int | float
    high: int | float
    step: int | float | None = None
    log: bool = False

    @field_validator("high")
    @classmethod
    def _ordered(cls, value: float, info: ValidationInfo) -> float:
        if "low" in info.data and value < info.data["low"]:
            raise ValueError(f"high {value} is below low {info.data['low']}")
        return value


class ValidationPeriod(_Strict):
    """Weekly origins on the local dates [start, end)."""

    start: date
    end: date


class TuneConfig(_Strict):
    """`spotcast tune`: an Optuna study of DeepARPipeline parameters (see forecasting/tuning)."""

    study: str = "deepar"
    seed: int = 0
    n_trials: int = Field(default=50, ge=1)
    # Neither report period of docs/backtest.md (2019, 2022-07…2023-06): the score to beat there stays honest.
    validation: tuple[ValidationPeriod, ...] = Field(
        default=(
            ValidationPeriod(start=date(2018, 1, 1), end=date(2019, 1, 1)),
            ValidationPeriod(start=date(2021, 7, 1), end=date(2022, 1, 1)),
        ),
        min_length=1,
    )
    # A file extending another replaces a dimension whole; `name = false` drops the base file's.
    space: dict[str, ParamRange] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)  # trial parameters fixed over [model.params]
    # Trials TPE draws at random before it models the finished ones (Optuna's default 10); a study
    # of a few dozen costly trials may start modelling sooner.
    sampler_startup_trials: int = Field(default=10, ge=1)
    # A new trial sees the trials at least workers × lag_per_worker positions older than itself (TPE
    # and the pruner use exactly those). 1: a worker idles whenever the trial `workers` places back
    # still runs; 2: it rarely idles, and each trial misses the few newest results.
    lag_per_worker: int = Field(default=2, ge=1)
    # true: a trial is asked as soon as a worker frees up, from every trial finished by then, the
    # running ones counted as bad (Optuna's constant liar): TPE learns sooner, but the trials then
    # depend on which finished first (lag_per_worker is unused). docs/scaling.md compares the two.
    constant_liar: bool = False
    pruner_startup_trials: int = Field(default=5, ge=0)  # completed trials before any pruning
    pruner_warmup_origins: int = Field(default=4, ge=0)  # origins of a trial before it can be pruned
    storage: str | None = None  # an Optuna RDB URL; default: a journal file in the lake
    dask_address: str | None = None  # an existing Dask scheduler; default: a local cluster
    trial_threads: int = Field(default=1, ge=1)  # torch threads per trial (workers × threads ≤ cores)

    @field_validator("space", mode="before")
    @classmethod
    def _dimensions(cls, value: object) -> object:
        """One clear line for what is not a dimension (a `false` left over dropped nothing)."""
        for name, bounds in value.items() if isinstance(value, dict) else ():
            if bounds is False:
                raise ValueError(f"{name} = false drops nothing: no file this one extends tunes {name}")
            if not isinstance(bounds, dict | ParamRange):
                raise ValueError(
                    f"{name} = {bounds!r}: a dimension is a table {{ low = …, high = … }} (step and log "
                    "optional), or false to drop one a file this one extends tunes"
                )
        return value


class PeakHours(_Strict):
    """The peak load of a market's products: these local weekdays (0 = Monday) and hours
    [start_hour, end_hour). Nordic (Nasdaq) and EEX: Monday–Friday 08:00–20:00. Public holidays on
    a weekday are peak hours too: the exchanges define peak by weekday and hour only."""

    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    start_hour: int = Field(default=8, ge=0, le=23)
    end_hour: int = Field(default=20, ge=1, le=24)

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(not 0 <= day <= 6 for day in value) or len(set(value)) != len(value):
            raise ValueError(f"weekdays must be distinct numbers 0 (Monday) … 6, got {list(value)}")
        return tuple(sorted(value))

    @field_validator("end_hour")
    @classmethod
    def _after_start(cls, value: int, info: ValidationInfo) -> int:
        if "start_hour" in info.data and value <= info.data["start_hour"]:
            raise ValueError(f"end_hour {value} is not after start_hour {info.data['start_hour']}")
        return value


class CustomPeriod(_Strict):
    """A delivery period the desk trades beyond days, weeks and months (local dates, both included)."""

    name: str = Field(min_length=1)
    start: date
    end: date
    load: Literal["base", "peak"] = "base"

    @field_validator("end")
    @classmethod
    def _not_before_start(cls, value: date, info: ValidationInfo) -> date:
        if "start" in info.data and value < info.data["start"]:
            raise ValueError(f"end {value} is before start {info.data['start']}")
        return value


class ProductsConfig(_Strict):
    """Calendar products forecast from the sample paths (forecasting/products.py)."""

    peak: PeakHours = PeakHours()
    custom: tuple[CustomPeriod, ...] = ()


class ForwardsConfig(_Strict):
    """The desk's forward settlement files (forecasting/forwards.py): `files` are paths or glob
    patterns landed by every daily run (and by `spotcast forwards land`); a trade date's settlement
    prices count as published at `settlement_time` local time (schedule time zone) that day."""

    files: tuple[str, ...] = ()
    settlement_time: time = time(18, 0)


class PrefectConfig(_Strict):
    """The Prefect server a command's runs report to (`PREFECT_API_URL` in the environment wins).
    Without either, a command reports to the server `spotcast serve` started for this PREFECT_HOME
    while it serves, else to a temporary server of its own: never to a server it was not told of
    (flows/servers.py, `point_runs_at_server`)."""

    api_url: str | None = Field(default=None, pattern=r"^https?://[^/@]+(/.*)?$")  # …:4200/api


class AlertsConfig(_Strict):
    """Notifications when the scheduled daily run fails, crashes, or has not finished by `deadline`
    (local time, [schedule] timezone; measured from its start: deadline − daily_at), sent by Prefect's
    own automations through a notification block that `spotcast serve` (or `spotcast alerts`) sets
    up on its server (flows/alerts.py, docs/operations.md "Alerts"). The webhook URL comes from
    SPOTCAST_ALERT_WEBHOOK_URL (it often holds a token), else `webhook_url`; `block` names a
    notification block of your own instead ("slug/name": e-mail, Slack, Teams …). With neither, or
    `enabled = false`, no alert is set up (and Spotcast's own automations are removed)."""

    enabled: bool = True
    webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    block: str | None = Field(default=None, pattern=r"^[a-z0-9-]+/[^/\s]+$")  # e.g. "sendgrid-email/desk"
    deadline: time | None = time(16, 0)  # None: no lateness alert


class Settings(_Strict):
    lake_root: str
    # An S3-compatible server for an s3:// lake (MinIO, Ceph); default AWS, or AWS_ENDPOINT_URL.
    # Credentials are never configured here: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile.
    lake_endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^@/]+(/.*)?$")
    # A landing holds the lake's write lock for seconds: wait this long for another run's landing
    # before failing with LakeBusy.
    lake_lock_wait_s: float = Field(default=300.0, ge=0)
    # A local folder or an fsspec URL (s3://bucket/models, on the lake's endpoint). Not given: data/models
    # beside a local lake, <lake_root>/models under a lake on an object store (`_resolve_outputs`).
    models_root: str = "data/models"
    zones: tuple[Zone, ...] = Field(min_length=1)
    feeds: dict[str, FeedConfig]
    series: dict[str, SeriesRule]
    retry: RetryPolicies = RetryPolicies()
    schedule: Schedule = Schedule()
    history: History = History()
    model: ModelConfig = ModelConfig()
    tune: TuneConfig = TuneConfig()
    products: ProductsConfig = ProductsConfig()
    forwards: ForwardsConfig = ForwardsConfig()
    prefect: PrefectConfig = PrefectConfig()
    alerts: AlertsConfig = AlertsConfig()
    entsoe_token: SecretStr | None = None  # from the environment only, never from the file

    @field_validator("series")
    @classmethod
    def _rules_known(cls, value: dict[str, SeriesRule]) -> dict[str, SeriesRule]:
        unknown = [s for s in value if s not in SERIES]
        if unknown:
            raise ValueError(f"unknown series {unknown}; known: {list(SERIES)}")
        for name, rule in value.items():  # a weekly series is stored once a week: its rule must say so
            if (name in WEEKLY_SERIES) != (rule.publication.kind == "weekly"):
                expected = "'weekly'" if name in WEEKLY_SERIES else "'day_ahead' or 'after_delivery'"
                raise ValueError(f"{name}: publication kind {rule.publication.kind!r}; it must be {expected}")
        return value

    def zone(self, name: str) -> Zone:
        for zone in self.zones:
            if zone.name == name:
                return zone
        raise ConfigError(f"zone {name!r} is not configured; configured: {self.zone_names}")

    @property
    def zone_names(self) -> list[str]:
        return [z.name for z in self.zones]

    @property
    def zone_timezones(self) -> dict[str, str]:
        """Zone name → its time zone, in configured order (what the model, baselines and feeds take)."""
        return {z.name: z.timezone for z in self.zones}

    def with_zones(self, names: list[str] | None) -> Settings:
        """These settings for only the zones `names` (all when None or empty); an unknown name is a
        UsageError (it comes from the command line or a run parameter)."""
        if not names:
            return self
        unknown = [name for name in names if name not in self.zone_names]
        if unknown:
            raise UsageError(f"unknown zone(s) {unknown}; configured: {self.zone_names}")
        return self.model_copy(update={"zones": tuple(self.zone(name) for name in names)})

    def enabled_feeds(self) -> dict[str, FeedConfig]:
        return {name: feed for name, feed in self.feeds.items() if feed.enabled}


def _has_item_errors(loc: tuple, errors: list[dict]) -> bool:
    return any(len(e["loc"]) > len(loc) and e["loc"][: len(loc)] == loc for e in errors)


def _format_errors(path: Path, exc: ValidationError) -> str:
    """One line: every bad key with its value and what is wrong with it."""
    problems = []
    errors = exc.errors()
    for err in errors:
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "too_short" and _has_item_errors(err["loc"], errors):
            continue  # a list left empty by its bad items (zones.0.timezone): their errors say it
        if err["type"] == "missing":
            problems.append(f"{key}: missing")
        elif isinstance(err.get("input"), dict):  # a whole table: the message names the key
            problems.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            problems.append(f"{key} = {err.get('input')!r}: {err['msg'].removeprefix('Value error, ')}")
    return f"invalid configuration {path}: " + "; ".join(problems)


def _check_lake_root(settings: Settings, path: Path) -> None:
    """A lake or models URL must name a file system fsspec knows (s3://, gs://, memory://, …)."""
    for key in OUTPUT_PATHS:
        root = getattr(settings, key)
        protocol = root.split("://", 1)[0] if "://" in root else "file"
        if protocol not in fsspec.available_protocols() and protocol not in fsspec.registry:
            raise ConfigError(
                f"invalid configuration {path}: {key} = {root!r}: unknown file system {protocol!r}; "
                f"use a local path or a URL like s3://bucket/{key.removesuffix('_root')}"
            )


def _check_zones(settings: Settings, path: Path) -> None:
    """Each zone once: a name or EIC code configured twice would pull one zone twice and drop the
    other in silence (the lake keys rows by name; the feeds ask by EIC code)."""
    for key, what in (("name", "zone name"), ("eic", "EIC code")):
        first: dict[str, int] = {}
        for number, zone in enumerate(settings.zones):
            value = getattr(zone, key)
            if value in first:
                raise ConfigError(
                    f"invalid configuration {path}: zones.{number}.{key} = {value!r}: {what} configured "
                    f"twice (zones.{first[value]} has it too); configure each zone once"
                )
            first[value] = number


def _check_sources(settings: Settings, path: Path) -> None:
    """A local replay source must exist and hold a file of a configured zone (`NO1.parquet`,
    `NO_1.csv`): found at load, not at the first pull."""
    for name, feed in settings.enabled_feeds().items():
        if not feed.source or "://" in feed.source:
            continue
        source = Path(feed.source)
        problem = None
        if not source.exists():
            problem = "no such file or folder"
        elif source.is_dir():
            names = {zone_from_filename(f) for f in source.iterdir() if f.suffix in HISTORY_SUFFIXES}
            if not names & set(settings.zone_names):
                problem = (
                    f"holds no .csv or .parquet file of the configured zones {settings.zone_names} "
                    "(nor an .xlsx workbook)"
                )
        if problem:
            raise ConfigError(
                f"invalid configuration {path}: feeds.{name}.source = {feed.source!r}: {problem}"
            )


def _check_covariates(settings: Settings, path: Path) -> None:
    """Covariates named in [model.params] or [tune.params] must be supplied by an enabled feed: a
    model would otherwise learn without them, in silence. (The defaults, when none are named, are
    checked when a model is trained: `forecasting.jobs.train.build_pipeline` warns.)"""
    supplied = {series for feed in settings.enabled_feeds().values() for series in feed.series}
    for table, params in (("model.params", settings.model.params), ("tune.params", settings.tune.params)):
        named = params.get("covariates")
        if named is None:
            continue
        named = [named] if isinstance(named, str) else list(named)
        needed = [source for series in named for source in DERIVED_COVARIATES.get(series, (series,))]
        unsupplied = sorted(set(needed) - supplied)
        if unsupplied:
            raise ConfigError(
                f"invalid configuration {path}: {table}.covariates = {named!r}: no enabled feed supplies "
                f"{unsupplied}; add them to an enabled feed's series or drop them from covariates"
            )


OUTPUT_PATHS = ("lake_root", "models_root")  # where Spotcast writes


def _local(path: object) -> bool:
    return isinstance(path, str) and bool(path) and "://" not in path


def _absolute(path: str, base: Path) -> str:
    full = Path(path).expanduser()
    return str(full if full.is_absolute() else base / full)


def _resolve_inputs(raw: dict, base: Path) -> dict:
    """`raw` with the relative local paths it reads from (replay sources, forwards files) made
    absolute against `base`, the project of the file that writes them (`project_of`)."""
    raw = dict(raw)
    feeds = raw.get("feeds")
    if isinstance(feeds, dict):
        raw["feeds"] = {
            name: {**feed, "source": _absolute(feed["source"], base)}
            if isinstance(feed, dict) and _local(feed.get("source"))
            else feed
            for name, feed in feeds.items()
        }
    forwards = raw.get("forwards")
    if isinstance(forwards, dict) and isinstance(forwards.get("files"), list | tuple):
        files = [_absolute(f, base) if _local(f) else f for f in forwards["files"]]
        raw["forwards"] = {**forwards, "files": files}
    return raw


def _resolve_outputs(raw: dict, base: Path) -> dict:
    """`raw` with relative local lake and model folders made absolute against `base`: the project
    of the configuration loaded, also where a file it extends wrote them (that file's owner's lake
    changes only when a path says so, absolute). Without models_root, models go beside a local lake
    (data/models) or under a lake on an object store (<lake_root>/models: a host needs no disk)."""
    lake = raw.get("lake_root")
    remote_lake = isinstance(lake, str) and "://" in lake
    raw = {"models_root": f"{lake.rstrip('/')}/models" if remote_lake else "data/models", **raw}
    for key in OUTPUT_PATHS:
        if _local(raw.get(key)):
            raw[key] = _absolute(raw[key], base)
    return raw


# Tables whose entries are each one whole (a search dimension's low, high, step and log belong
# together): a file extending another replaces such an entry whole, and `name = false` drops it.
WHOLE_ENTRIES = (("tune", "space"),)


def _merged(base: dict, changes: dict, at: tuple[str, ...] = ()) -> dict:
    """`base` with `changes` over it: tables key by key, everything else (values, lists) replaced;
    the entries of a WHOLE_ENTRIES table replaced or dropped whole."""
    if at in WHOLE_ENTRIES:
        return _replaced(base, changes)
    merged = dict(base)
    for key, value in changes.items():
        below = merged.get(key)
        nested = isinstance(below, dict) and isinstance(value, dict)
        merged[key] = _merged(below, value, (*at, key)) if nested else value
    return merged


def _replaced(base: dict, changes: dict) -> dict:
    """`base`'s entries with those of `changes` instead; `false` drops an entry of `base` (one that
    `base` lacks is kept, for validation to refuse: it drops nothing, a typo perhaps)."""
    merged = {**base, **changes}
    dropped = {key for key, value in changes.items() if value is False and isinstance(base.get(key), dict)}
    return {key: value for key, value in merged.items() if key not in dropped}


def _read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """The file's tables; with `extends = "other.toml"` (relative to the file), over that file's."""
    if path.resolve() in seen:
        raise ConfigError(f"configuration file {path} extends itself (via {' → '.join(map(str, seen))})")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file not found: {path}") from exc
    except IsADirectoryError:
        raise ConfigError(f"configuration file {path} is a directory; give the .toml file in it") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"configuration file {path} is not a text file (TOML is UTF-8 text; byte {exc.start}: "
            f"{exc.reason})"
        ) from None
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    if "entsoe_token" in raw:
        raise ConfigError(f"{path}: entsoe_token must not be written in a file; set {TOKEN_ENV} instead")
    base = raw.pop("extends", None)
    raw = _resolve_inputs(raw, project_of(path))
    if base is None:
        return raw
    return _merged(_read_raw(path.parent / base, (*seen, path.resolve())), raw)


def load_settings(path: str | Path | None = None, **overrides: object) -> Settings:
    """Load and validate the TOML configuration (default: `default_config()`); `overrides` replace
    top-level keys (tests, CLI). A file may start from another one (`extends = "spotcast.toml"`) and
    change only some keys. Relative paths are relative to a file's project (`project_of`): sources
    and forwards files to that of the file that writes them, lake_root and models_root always to
    that of `path` (overrides: as if written in `path`)."""
    path = Path(path) if path else default_config()
    project = project_of(path)
    raw = _read_raw(path)
    raw.update(_resolve_inputs(overrides, project))
    raw = _resolve_outputs(raw, project)
    token = os.environ.get(TOKEN_ENV)
    if token:
        raw["entsoe_token"] = token
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
    _check_lake_root(settings, path)
    _check_zones(settings, path)
    _check_sources(settings, path)
    _check_covariates(settings, path)
    return settings


def settings_for(config: str | Path | None, zones: list[str] | None) -> Settings:
    """The configuration `config` (default: the project's) for only the zones `zones` (all when None
    or empty): how a flow or job given those two run parameters reads its settings."""
    return load_settings(config).with_zones(zones)
