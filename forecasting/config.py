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
from forecasting.feeds.bundled import zone_from_filename
from forecasting.schema import SERIES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "spotcast.toml"
TOKEN_ENV = "ENTSOE_API_TOKEN"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc
    return name


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
    """

    kind: Literal["day_ahead", "after_delivery"]
    local_time: time = time(13, 0)
    lag_hours: int = Field(default=1, ge=0)


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


class FeedConfig(_Strict):
    kind: Literal["replay", "entsoe", "energy_charts"]
    series: tuple[str, ...]
    enabled: bool = True
    base_url: str | None = None
    source: str | None = None  # replay: bundled Parquet dir, or a deepforkit-format CSV/dir
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
    space: dict[str, ParamRange] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)  # trial parameters fixed over [model.params]
    # Trials TPE draws at random before it models the finished ones (Optuna's default 10); a study
    # of a few dozen costly trials may start modelling sooner.
    sampler_startup_trials: int = Field(default=10, ge=1)
    # A new trial sees the trials at least workers × lag_per_worker positions older than itself (TPE
    # and the pruner use exactly those). 1: a worker idles whenever the trial `workers` places back
    # still runs; 2: it rarely idles, and each trial misses the few newest results.
    lag_per_worker: int = Field(default=2, ge=1)
    pruner_startup_trials: int = Field(default=5, ge=0)  # completed trials before any pruning
    pruner_warmup_origins: int = Field(default=4, ge=0)  # origins of a trial before it can be pruned
    storage: str | None = None  # an Optuna RDB URL; default: a journal file in the lake
    dask_address: str | None = None  # an existing Dask scheduler; default: a local cluster
    trial_threads: int = Field(default=1, ge=1)  # torch threads per trial (workers × threads ≤ cores)


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


class Settings(_Strict):
    lake_root: str
    # An S3-compatible server for an s3:// lake (MinIO, Ceph); default AWS, or AWS_ENDPOINT_URL.
    # Credentials are never configured here: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a profile.
    lake_endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^@/]+(/.*)?$")
    # A landing holds the lake's write lock for seconds: wait this long for another run's landing
    # before failing with LakeBusy.
    lake_lock_wait_s: float = Field(default=300.0, ge=0)
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
    entsoe_token: SecretStr | None = None  # from the environment only, never from the file

    @field_validator("series")
    @classmethod
    def _rules_known(cls, value: dict[str, SeriesRule]) -> dict[str, SeriesRule]:
        unknown = [s for s in value if s not in SERIES]
        if unknown:
            raise ValueError(f"unknown series {unknown}; known: {list(SERIES)}")
        return value

    def zone(self, name: str) -> Zone:
        for zone in self.zones:
            if zone.name == name:
                return zone
        raise ConfigError(f"zone {name!r} is not configured; configured: {self.zone_names}")

    @property
    def zone_names(self) -> list[str]:
        return [z.name for z in self.zones]

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


def _format_errors(path: Path, exc: ValidationError) -> str:
    """One line: every bad key with its value and what is wrong with it."""
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "missing":
            problems.append(f"{key}: missing")
        elif isinstance(err.get("input"), dict):  # a whole table: the message names the key
            problems.append(f"{key}: {err['msg'].removeprefix('Value error, ')}")
        else:
            problems.append(f"{key} = {err.get('input')!r}: {err['msg'].removeprefix('Value error, ')}")
    return f"invalid configuration {path}: " + "; ".join(problems)


def _check_lake_root(settings: Settings, path: Path) -> None:
    """A lake URL must name a file system fsspec knows (s3://, gs://, memory://, …)."""
    protocol = settings.lake_root.split("://", 1)[0] if "://" in settings.lake_root else "file"
    if protocol not in fsspec.available_protocols() and protocol not in fsspec.registry:
        raise ConfigError(
            f"invalid configuration {path}: lake_root = {settings.lake_root!r}: unknown file system "
            f"{protocol!r}; use a local path or a URL like s3://bucket/lake"
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
            names = {zone_from_filename(f) for f in source.iterdir() if f.suffix in (".csv", ".parquet")}
            if not names & set(settings.zone_names):
                problem = f"holds no .csv or .parquet file of the configured zones {settings.zone_names}"
        if problem:
            raise ConfigError(
                f"invalid configuration {path}: feeds.{name}.source = {feed.source!r}: {problem}"
            )


def _resolve_paths(raw: dict, base: Path) -> dict:
    """Relative local paths in the file are relative to the project root, not the cwd."""
    raw.setdefault("models_root", "data/models")
    for key in ("lake_root", "models_root"):
        root = raw.get(key)
        if isinstance(root, str) and "://" not in root and not Path(root).is_absolute():
            raw[key] = str(base / root)
    for feed in raw.get("feeds", {}).values():
        src = feed.get("source") if isinstance(feed, dict) else None
        if isinstance(src, str) and "://" not in src and not Path(src).is_absolute():
            feed["source"] = str(base / src)
    return raw


def _merged(base: dict, changes: dict) -> dict:
    """`base` with `changes` over it: tables key by key, everything else (values, lists) replaced."""
    merged = dict(base)
    for key, value in changes.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


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
    if base is None:
        return raw
    return _merged(_read_raw(path.parent / base, (*seen, path.resolve())), raw)


def load_settings(path: str | Path | None = None, **overrides: object) -> Settings:
    """Load and validate the TOML configuration; `overrides` replace top-level keys (tests, CLI).
    A file may start from another one (`extends = "spotcast.toml"`) and change only some keys."""
    path = Path(path) if path else DEFAULT_CONFIG
    raw = _read_raw(path)
    raw.update(overrides)
    raw = _resolve_paths(raw, PROJECT_ROOT)
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
    return settings
