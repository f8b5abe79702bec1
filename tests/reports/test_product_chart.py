"""Product charts drawn from the forward view of real product forecasts (random paths, fixed seed)."""

from __future__ import annotations

from datetime import date

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from forecasting.config import PeakHours
from forecasting.paths import PATH_DTYPE, ZonePaths
from forecasting.products import DAY, KIND, forward_view, product_forecast
from forecasting.reports.product_chart import (
    DPI,
    FORWARD_LABEL,
    NO_FORWARD_LABEL,
    WIDTH,
    product_chart,
    product_chart_figure,
)
from forecasting.schema import HORIZON_HOURS

OSLO = "Europe/Oslo"
FIRST_DAY = "2023-07-06"  # a Thursday: the running week, BOW, the month and BOM are all priced


@pytest.fixture(scope="module")
def products():
    start = pd.Timestamp(FIRST_DAY, tz=OSLO).tz_convert("UTC")
    hours = pd.date_range(start, periods=HORIZON_HOURS, freq="h")
    values = np.random.default_rng(7).normal(60.0, 15.0, (100, HORIZON_HOURS)).astype(PATH_DTYPE)
    paths = ZonePaths("NO1", OSLO, start - pd.Timedelta(hours=10), hours, values, "test")
    settled_from = pd.Timestamp("2023-07-01", tz=OSLO).tz_convert("UTC")
    settled = pd.Series(55.0, index=pd.date_range(settled_from, start, freq="h", inclusive="left"))
    return product_forecast(paths, settled, PeakHours())


@pytest.fixture(scope="module")
def forwards() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trade_date": [date(2023, 7, 4)],
            "zone": ["NO1"],
            "load": ["base"],
            "delivery_start": [date(2023, 7, 10)],
            "delivery_end": [date(2023, 7, 16)],
            "price": [64.0],
            "quoted_as": ["forward"],
            "published_at": [pd.Timestamp("2023-07-04 16:00", tz="UTC")],
            "source": ["test"],
        }
    )


def _legend_labels(figure) -> list[str]:
    return [text.get_text() for text in figure.legends[0].get_texts()]


def test_product_chart_writes_a_png_with_the_forward(products, forwards, tmp_path):
    path = product_chart(forward_view(products, forwards), "NO1", tmp_path / "products_NO1.png")

    image = mpimg.imread(path)
    assert path.stat().st_size > 0
    assert image.shape[1] == round(WIDTH * DPI)
    assert image[..., :3].std() > 0  # something is drawn
    assert FORWARD_LABEL in _legend_labels(product_chart_figure(forward_view(products, forwards), "NO1"))


def test_without_forwards_the_legend_says_none_was_given(products, tmp_path):
    view = forward_view(products, pd.DataFrame())
    path = product_chart(view, "NO1", tmp_path / "products_NO1.png")

    assert path.stat().st_size > 0
    labels = _legend_labels(product_chart_figure(view, "NO1"))
    assert NO_FORWARD_LABEL in labels and FORWARD_LABEL not in labels


def test_chart_rows_are_the_non_day_products_in_delivery_order(products):
    view = forward_view(products, pd.DataFrame())
    ticks = [t.get_text() for t in product_chart_figure(view, "NO1").axes[0].get_yticklabels()]

    assert len(ticks) == int((view[KIND] != DAY).sum())
    # The running month starts first (settled share shown), the last week comes last.
    assert ticks[0].startswith("2023-07 base (16% settled)")
    assert ticks[-1].startswith("2023-W30")


def test_days_are_drawn_on_request(products):
    view = forward_view(products, pd.DataFrame())
    figure = product_chart_figure(view, "NO1", kinds=(DAY,))

    assert len(figure.axes[0].get_yticklabels()) == int((view[KIND] == DAY).sum())


def test_title_names_zone_and_issue(products):
    title = product_chart_figure(forward_view(products, pd.DataFrame()), "NO1").axes[0].get_title()

    assert title.startswith("NO1") and "issued 2023-07-05 12:00 UTC" in title


def test_product_chart_leaves_no_open_pyplot_figure(products, tmp_path):
    before = plt.get_fignums()
    product_chart(forward_view(products, pd.DataFrame()), "NO1", tmp_path / "products.png")

    assert plt.get_fignums() == before


def test_a_zone_without_products_is_refused(products):
    with pytest.raises(ValueError, match="NO5"):
        product_chart_figure(forward_view(products, pd.DataFrame()), "NO5")
