"""Which configured feed supplies which series, and building the feed objects from settings."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from forecasting.clock import utc_now
from forecasting.config import ConfigError, Settings
from forecasting.feeds import entsoe
from forecasting.feeds.base import Feed
from forecasting.feeds.energy_charts import EnergyChartsFeed
from forecasting.feeds.nve import NveFeed
from forecasting.feeds.replay import ReplayFeed


def series_sources(settings: Settings) -> dict[str, str]:
    """series → name of the one enabled feed that supplies it."""
    sources: dict[str, str] = {}
    for name, feed in settings.enabled_feeds().items():
        for series in feed.series:
            if series in sources:
                raise ConfigError(
                    f"series {series!r} is supplied by two enabled feeds, {sources[series]!r} and "
                    f"{name!r}; disable one (feeds.<name>.enabled = false) or drop it from its series"
                )
            if series not in settings.series:
                raise ConfigError(f"feeds.{name}.series lists {series!r}, with no [series.{series}] rule")
            sources[series] = name
    if not sources:
        raise ConfigError("no enabled feed supplies any series; enable at least one under [feeds]")
    return sources


def build_feed(settings: Settings, name: str, clock: Callable[[], pd.Timestamp] = utc_now) -> Feed:
    kind = settings.feeds[name].kind
    if kind == "replay":
        return ReplayFeed.from_settings(settings, clock=clock, feed_name=name)
    if kind == "entsoe":
        return entsoe.from_settings(settings, feed_name=name)
    if kind == "nve":
        return NveFeed.from_settings(settings, feed_name=name)
    return EnergyChartsFeed.from_settings(settings, feed_name=name)


def build_feeds(settings: Settings, clock: Callable[[], pd.Timestamp] = utc_now) -> dict[str, Feed]:
    names = sorted(set(series_sources(settings).values()))
    return {name: build_feed(settings, name, clock) for name in names}
