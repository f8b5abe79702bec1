"""Fan charts drawn from a real seasonal-naive forecast of the bundled NO1–NO5 history."""

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.evaluation.baselines import SeasonalNaiveEmpirical
from forecasting.feeds.replay import ReplayFeed
from forecasting.forecast_frame import forecast_hours, make_forecast_frame
from forecasting.reports.fan_chart import (
    DPI,
    FIGSIZE,
    REALISED_LABEL,
    fan_chart,
    fan_chart_figure,
    interpolated_quantile,
)

OSLO = "Europe/Oslo"
ZONES = {"NO1": OSLO, "NO2": OSLO}
ISSUED = pd.Timestamp("2023-03-20 12:00", tz="UTC")  # horizon spans the 26 March DST switch


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    full = ReplayFeed.from_settings(load_settings()).history
    return full[full["zone"].isin(list(ZONES)) & (full["delivery_hour"] >= "2022-01-01")]


@pytest.fixture(scope="module")
def forecast(history) -> pd.DataFrame:
    return SeasonalNaiveEmpirical(ZONES).fit(history).predict(history, ISSUED)


def _deciles_forecast(deciles: list[float]) -> pd.DataFrame:
    hours = forecast_hours(ISSUED.ceil("D"), horizon=2)
    quantiles = np.array([deciles, deciles])
    return make_forecast_frame("NO1", OSLO, ISSUED, hours, quantiles[:, 4], quantiles, "test")


def test_fan_chart_writes_png_of_fixed_size(forecast, history, tmp_path):
    path = fan_chart(forecast, history, "NO1", OSLO, tmp_path / "fan_NO1.png")

    image = mpimg.imread(path)
    assert image.shape[:2] == (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))


def test_fan_chart_leaves_no_open_pyplot_figure(forecast, history, tmp_path):
    before = plt.get_fignums()
    fan_chart(forecast, history, "NO2", OSLO, tmp_path / "fan_NO2.png")

    assert plt.get_fignums() == before


def test_title_names_zone_local_issue_time_and_model(forecast, history):
    title = fan_chart_figure(forecast, history, "NO1", OSLO).axes[0].get_title()

    assert title.startswith("NO1")
    assert "2023-03-20 13:00 CET" in title
    assert "seasonal_naive_empirical" in title


def test_x_axis_ticks_are_local_mondays(forecast, history):
    figure = fan_chart_figure(forecast, history, "NO1", OSLO)
    figure.canvas.draw()

    labels = [t.get_text() for t in figure.axes[0].get_xticklabels() if t.get_text()]
    assert labels and all(label.startswith("Mon") for label in labels)


def test_backtest_overlays_realised_prices(forecast, history):
    legend = fan_chart_figure(forecast, history, "NO1", OSLO).legends[0]

    assert REALISED_LABEL in [t.get_text() for t in legend.get_texts()]


def test_live_forecast_without_realised_prices_has_no_overlay(forecast, history):
    start = forecast["delivery_hour"].min()
    known = history[history["delivery_hour"] < start]

    legend = fan_chart_figure(forecast, known, "NO1", OSLO).legends[0]

    assert REALISED_LABEL not in [t.get_text() for t in legend.get_texts()]


def test_zone_without_forecast_rows_is_rejected(forecast, history):
    with pytest.raises(ValueError, match="NO5"):
        fan_chart_figure(forecast, history, "NO5", OSLO)


def test_p25_and_p75_interpolate_linearly_between_neighbouring_deciles():
    frame = _deciles_forecast([-10.0, 50.0, 70.0, 80.0, 90.0, 100.0, 130.0, 170.0, 400.0])

    assert interpolated_quantile(frame, 0.25).tolist() == pytest.approx([60.0, 60.0])
    assert interpolated_quantile(frame, 0.75).tolist() == pytest.approx([150.0, 150.0])


def test_interpolated_quantile_at_a_decile_is_that_decile():
    frame = _deciles_forecast([-10.0, 50.0, 70.0, 80.0, 90.0, 100.0, 130.0, 170.0, 400.0])

    assert interpolated_quantile(frame, 0.3).tolist() == [70.0, 70.0]


def test_interpolated_quantile_outside_the_deciles_is_rejected():
    frame = _deciles_forecast([float(q) for q in range(9)])

    with pytest.raises(ValueError, match="outside"):
        interpolated_quantile(frame, 0.05)
