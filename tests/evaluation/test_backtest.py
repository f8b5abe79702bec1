"""Rolling-origin backtest on a small slice of the bundled history (three Mondays of March 2019,
NO1–NO2), with the seasonal naive itself as "the model" behind a recording wrapper."""

from datetime import time

import pandas as pd
import pytest

from forecasting.clock import weekly_origins
from forecasting.config import load_settings
from forecasting.evaluation.backtest import BacktestResult, run_backtest
from forecasting.evaluation.baselines import SeasonalNaive
from forecasting.feeds.replay import ReplayFeed
from forecasting.schema import HORIZON_HOURS, PUBLISHED_AT

ZONES = ["NO1", "NO2"]
ORIGINS = pd.DatetimeIndex(["2019-03-04 11:00", "2019-03-11 11:00", "2019-03-18 11:00"], tz="UTC")


class RecordingForecaster:
    """Test double of the Forecaster protocol: records the newest publication each call could see."""

    def __init__(self, inner: SeasonalNaive, fits: list, predicts: list) -> None:
        self.inner, self.fits, self.predicts = inner, fits, predicts

    def fit(self, history: pd.DataFrame) -> "RecordingForecaster":
        self.fits.append(history[PUBLISHED_AT].max())
        self.inner.fit(history)
        return self

    def predict(self, history: pd.DataFrame, issued_at: pd.Timestamp) -> pd.DataFrame:
        self.predicts.append((issued_at, history[PUBLISHED_AT].max()))
        return self.inner.predict(history, issued_at)


@pytest.fixture(scope="module")
def run() -> tuple[BacktestResult, list, list]:
    settings = load_settings()
    history = ReplayFeed.from_settings(settings).history
    timezones = {zone.name: zone.timezone for zone in settings.zones}
    fits: list = []
    predicts: list = []
    result = run_backtest(
        history,
        lambda: RecordingForecaster(SeasonalNaive(timezones), fits, predicts),
        "2019-03-01",
        "2019-03-22",
        timezones=timezones,
        retrain_every=2,
        zones=ZONES,
        period="test",
    )
    return result, fits, predicts


def test_weekly_origins_are_mondays_at_noon_oslo_across_dst():
    origins = weekly_origins("2019-03-25", "2019-04-08", weekday=0, local_time=time(12, 0))
    assert origins.tolist() == [
        pd.Timestamp("2019-03-25 11:00", tz="UTC"),  # CET
        pd.Timestamp("2019-04-01 10:00", tz="UTC"),  # CEST
    ]


def test_backtest_issues_at_each_weekly_origin(run):
    result, _, _ = run
    assert result.origins.equals(ORIGINS)
    assert sorted(result.forecasts["issued_at"].unique()) == ORIGINS.tolist()


def test_backtest_refits_every_second_origin(run):
    result, fits, _ = run
    assert result.training_origins.equals(ORIGINS[[0, 2]])
    assert len(fits) == 2


def test_each_fit_sees_only_data_published_by_its_training_origin(run):
    _, fits, _ = run
    for newest, origin in zip(fits, ORIGINS[[0, 2]], strict=True):
        assert origin - pd.Timedelta(days=1) < newest <= origin


def test_each_predict_sees_only_data_published_by_its_origin(run):
    _, _, predicts = run
    assert [issued for issued, _ in predicts] == ORIGINS.tolist()
    assert all(issued - pd.Timedelta(days=1) < newest <= issued for issued, newest in predicts)


def test_backtest_forecasts_every_zone_and_horizon_hour_for_each_model(run):
    result, _, _ = run
    rows = result.forecasts.groupby(["model", "issued_at", "zone"]).size()
    assert set(rows) == {HORIZON_HOURS}
    assert len(rows) == 4 * len(ORIGINS) * len(ZONES)  # the model and three baselines


def test_seasonal_naive_as_model_has_rmae_exactly_one(run):
    result, _, _ = run
    assert (result.metrics.loc[result.metrics["model"] == "model", "rmae"] == 1.0).all()


def test_baselines_are_scored_beside_the_model_on_the_same_hours(run):
    result, _, _ = run
    hours = result.metrics.pivot(index="horizon_week", columns="model", values="hours")
    assert list(hours.columns) == ["level_shape_naive", "model", "seasonal_naive", "seasonal_naive_empirical"]
    assert (hours.nunique(axis=1) == 1).all()


def test_metrics_cover_each_horizon_week(run):
    result, _, _ = run
    weeks = result.metrics["horizon_week"].unique().tolist()
    assert weeks == ["all", "days 1-7", "days 8-14", "days 15-28"]


def test_parquet_is_partitioned_by_period_and_model(run, tmp_path):
    result, _, _ = run
    result.write_parquet(tmp_path)
    partitions = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("forecasts/*/*"))
    assert partitions == [
        f"forecasts/period=test/model={m}"
        for m in ("level_shape_naive", "model", "seasonal_naive", "seasonal_naive_empirical")
    ]
    assert len(pd.read_parquet(tmp_path / "forecasts")) == len(result.forecasts)


def test_markdown_report_lists_the_model_and_the_baselines(run):
    result, _, _ = run
    report = result.to_markdown()
    for model in ("model", "seasonal_naive", "seasonal_naive_empirical", "level_shape_naive"):
        assert f"| days 15-28 | {model} |" in report
