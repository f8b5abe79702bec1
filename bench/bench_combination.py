"""Choosing the combination (issue 18): the LightGBM member's weight in the quantile average and the
per-zone shrinkage of the hourly spread stage, scored like the backtest (weekly Monday issues, the
configured model refitted at each period's first origin on what was published by then, each
forecast calibrated on its own delivered past issues) — on the VALIDATION periods by default.

    .venv/bin/python bench/bench_combination.py [--periods val2018 val2021h2] [--weights 0 0.25 0.5 0.75 1]
                                                [--priors none 8] [--rolling] [--set PARAM=VALUE ...] [--out /tmp/comb.csv]

One fit per period serves every candidate: the combination is linear in the weight (the same
DeepAR samples, moved in their own rank order), so the paths at weight w are (1 − w) × DeepAR's +
w × the member's quantiles at the samples' levels, both made once per issue. Prints rMAE, CRPS and
10–90 cover per candidate (overall, per horizon week; per zone × horizon week in --out) next to the
seasonal naive on the same hours. `--rolling` adds `rolling_pooled`: at each issue and horizon week
the weight whose calibrated forecasts of the delivered calibration issues scored best (docs/backtest.md,
"A weight per issue and horizon week"). Products are not scored here (their stage is unchanged;
bench_backtest.py scores them for the chosen candidate).

Every period prints the member's weight per horizon week that `fit_weight` fits on its raw deciles
(before the spread stage). `--fit-on val2018 val2021h2` pools those periods' fits (they must come
first in --periods) and scores `fitted_pooled` on the periods after them: each horizon week at the
weight fitted on the validation periods, then the pooled spread stage — weights chosen on validation
issues only, scored on the report periods:

    .venv/bin/python bench/bench_combination.py --periods val2018 val2021h2 2019 crisis \
        --fit-on val2018 val2021h2 --weights 0 0.5 --priors none

`--week-weights W1 W2 W3 W4` scores weights fitted by an earlier run (e.g. under another draw).
Zones never tuned on: `--config` (docs/own_zone.md) and `--period NAME START END`, e.g. the EPF
benchmark's Nord Pool system price (bench/outsiders/np.toml):

    .venv/bin/python bench/bench_combination.py --config bench/outsiders/np.toml \
        --period val2017 2017-01-01 2018-01-01 --period 2018 2018-01-01 2018-12-01 \
        --periods val2017 2018 --fit-on val2017 --weights 0 0.5 --priors none
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_backtest import PERIOD_LABELS, PERIODS
from measure import machine, param, peak_mb

from forecasting.clock import weekly_origins
from forecasting.config import load_settings
from forecasting.evaluation.baselines import SEASONAL_NAIVE, SeasonalNaive
from forecasting.evaluation.metrics import ALL, HORIZON_WEEK, MODEL, crps_from_quantiles, score
from forecasting.feeds.replay import ReplayFeed, forget_recordings
from forecasting.jobs.train import build_pipeline, forecaster_of
from forecasting.model.calibration import HORIZON_WEEKS, MEDIAN, SpreadCalibration, horizon_week
from forecasting.model.combination import fit_weight
from forecasting.model.pipeline import DeepARPipeline
from forecasting.paths import IssuePaths
from forecasting.publication import known_at
from forecasting.schema import (
    DELIVERY_HOUR,
    FORECAST_COLUMNS,
    PRICE,
    QUANTILE_COLUMNS,
    SERIES_COL,
    VALUE,
    ZONE,
)

log = logging.getLogger("bench_combination")


def view(pipeline: DeepARPipeline, weight: float) -> DeepARPipeline:
    """The fitted pipeline forecasting with the member at `weight` (its own model id)."""
    state = pipeline.fitted_state()
    state = replace(state, model_id=f"{state.model_id}-w{weight:g}", member=state.member if weight else None)
    return DeepARPipeline.from_state({**pipeline.get_params(), "gbm_weight": weight}, state)


def blend(alone: IssuePaths, member: IssuePaths, weight: float) -> IssuePaths:
    zones = tuple(
        a.with_values((1 - weight) * a.values.astype("float64") + weight * m.values.astype("float64"))
        for a, m in zip(alone.zones, member.zones, strict=True)
    )
    return IssuePaths(alone.issued_at, alone.model_id, zones)


def candidates(weights: list[float], priors: list[float | None]) -> list[tuple[str, float, float | None]]:
    return [(f"w{w:g}_{'pooled' if p is None else f'zone{p:g}'}", w, p) for w in weights for p in priors]


def past_crps(past: pd.DataFrame, stage: SpreadCalibration, prices: pd.DataFrame) -> np.ndarray:
    """CRPS per horizon week of the past issues' deciles as `stage` calibrates them (in sample:
    the factors were fitted on these issues, alike for every weight)."""
    outcome = past.merge(prices[[ZONE, DELIVERY_HOUR, VALUE]], on=[ZONE, DELIVERY_HOUR], how="inner")
    weeks = horizon_week(outcome)
    deciles = outcome[list(QUANTILE_COLUMNS)].to_numpy("float64")
    median = outcome[[MEDIAN]].to_numpy("float64")
    calibrated = median + stage.factors_[weeks][:, None] * (deciles - median)
    truth = outcome[VALUE].to_numpy("float64")
    return np.array([
        crps_from_quantiles(truth[weeks == week], calibrated[weeks == week]) if (weeks == week).any() else np.inf
        for week in range(HORIZON_WEEKS)
    ])


def raw_outcomes(alone: dict, member: dict, origins: list[pd.Timestamp], prices: pd.DataFrame) -> pd.DataFrame:
    """Every delivered hour of the period's issues: DeepAR's raw deciles, the member's (as
    `p10_member` …), the price (VALUE); the two frames of an issue list the same hours in order."""
    frames = []
    for issued_at in origins:
        own, theirs = alone[issued_at].forecast_frame(), member[issued_at].forecast_frame()
        theirs_columns = theirs[list(QUANTILE_COLUMNS)].rename(columns=lambda c: f"{c}_member")
        frames.append(pd.concat([own, theirs_columns], axis=1))
    both = pd.concat(frames, ignore_index=True)
    return both.merge(prices[[ZONE, DELIVERY_HOUR, VALUE]], on=[ZONE, DELIVERY_HOUR], how="inner")


def fitted_weights(outcomes: pd.DataFrame) -> np.ndarray:
    """`fit_weight` per horizon week (the spread stage's weeks) on raw deciles and prices."""
    weeks = horizon_week(outcomes)
    own = outcomes[list(QUANTILE_COLUMNS)].to_numpy("float64")
    theirs = outcomes[[f"{c}_member" for c in QUANTILE_COLUMNS]].to_numpy("float64")
    truth = outcomes[VALUE].to_numpy("float64")
    return np.array([fit_weight(own[weeks == w], theirs[weeks == w], truth[weeks == w]) for w in range(HORIZON_WEEKS)])


def by_week(pooled: dict[float, dict[pd.Timestamp, pd.DataFrame]], origin: pd.Timestamp, picks: list[float], name: str) -> pd.DataFrame:
    """The issue's rows of each horizon week from the forecast at that week's weight (the spread
    stage is per horizon week, so a week's rows depend on its weight alone)."""
    parts = []
    for week, weight in enumerate(picks):
        frame = pooled[weight][origin]
        parts.append(frame[horizon_week(frame) == week])
    return pd.concat(parts, ignore_index=True).assign(**{MODEL: name})


def rolling_choice(
    pooled: dict[float, dict[pd.Timestamp, pd.DataFrame]], track: dict[float, dict[pd.Timestamp, np.ndarray]]
) -> tuple[list[pd.DataFrame], np.ndarray]:
    """At each issue and horizon week, the weight whose calibrated forecasts of the delivered past
    issues (the calibration issues) scored the lowest CRPS. Honest: only issues delivered by the
    issue time are scored."""
    weights = sorted(track)
    frames, chosen = [], []
    for origin in sorted(track[weights[0]]):
        losses = np.vstack([track[w][origin] for w in weights])
        picks = [weights[i] for i in losses.argmin(axis=0)]
        frames.append(by_week(pooled, origin, picks, "rolling_pooled"))
        chosen.append(picks)
    return frames, np.array(chosen)


def evaluate(
    history: pd.DataFrame, name: str, args: argparse.Namespace, settings, week_weights: np.ndarray | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The period's scores per candidate, and its raw outcomes (for `--fit-on`). `week_weights`:
    the weights per horizon week fitted on earlier periods, scored as `fitted_pooled`."""
    start, end = args.period_table[name]
    origins = weekly_origins(start, end, 0, pd.Timestamp("12:00").time(), "Europe/Oslo")
    began = time.perf_counter()
    overrides = {**dict(args.set), "gbm_weight": 1.0}  # trains the member; the views set the weight
    pipeline = build_pipeline(settings).set_params(**overrides).fit(known_at(history, origins[0]))
    fitted = time.perf_counter() - began
    forecaster = forecaster_of(settings, view(pipeline, 0.0))
    issues = forecaster.raw_issues(origins)
    alone = {p.issued_at: p for p in view(pipeline, 0.0).raw_forecasts(history, issues)}
    member = {p.issued_at: p for p in view(pipeline, 1.0).raw_forecasts(history, issues)}
    sampled = time.perf_counter() - began - fitted
    log.info("%s: fit %.0f s, %d raw issues × 2 in %.0f s", name, fitted, len(issues), sampled)
    prices = history[history[SERIES_COL] == PRICE]
    timezones = settings.zone_timezones
    naive = SeasonalNaive(timezones).fit(known_at(history, origins[0]))
    frames = [naive.predict(known_at(history, origin), origin).assign(**{MODEL: SEASONAL_NAIVE}) for origin in origins]
    outcomes = raw_outcomes(alone, member, origins, prices)
    log.info("%s: the member's weight fitted on the raw deciles, per horizon week: %s", name, np.round(fitted_weights(outcomes), 3))
    pooled: dict[float, dict[pd.Timestamp, pd.DataFrame]] = {}  # weight → origin → calibrated frame
    track: dict[float, dict[pd.Timestamp, np.ndarray]] = {}  # weight → origin → past CRPS per week
    scored = {w for w in args.weights if None in args.priors}  # weights whose pooled forecasts are made anyway
    extra = [] if week_weights is None else [(None, w, None) for w in sorted(set(map(float, week_weights)) - scored)]
    for label, weight, prior in [*candidates(args.weights, args.priors), *extra]:
        blended = {t: blend(alone[t], member[t], weight) for t in alone}
        # each issue's hourly frame made once per weight (the forecaster's hourly_stage makes the
        # frames of its 16 past issues at every forecast)
        raw_frames = {t: paths.forecast_frame() for t, paths in blended.items()}
        for origin in origins:
            issues_before = forecaster.pipeline.calibration_issues(origin, forecaster.clock)
            past = pd.concat([raw_frames[t] for t in issues_before if t in raw_frames], ignore_index=True)
            known = known_at(prices, origin)  # per origin, not kept: a copy of the prices each
            stage = SpreadCalibration(prior).fit(past, known)
            made = blended[origin].map(stage.apply).forecast_frame().assign(**{MODEL: label})
            if label is not None:
                frames.append(made)
            if prior is None and (args.rolling or week_weights is not None):  # assembled by week below
                pooled.setdefault(weight, {})[origin] = made
            if args.rolling and prior is None and label is not None:
                track.setdefault(weight, {})[origin] = past_crps(past, stage, known)
    if track:
        rolling, chosen = rolling_choice(pooled, track)
        frames.extend(rolling)
        log.info("%s: rolling weights chosen per horizon week, mean %s", name, np.round(chosen.mean(axis=0), 2))
    if week_weights is not None:
        frames.extend(by_week(pooled, origin, [float(w) for w in week_weights], "fitted_pooled") for origin in origins)
    forecasts = pd.concat([f[[*FORECAST_COLUMNS, MODEL]] for f in frames], ignore_index=True)
    table = score(forecasts, prices, model_col=MODEL, by_zone=True)
    return table.assign(period=PERIOD_LABELS.get(name, name), fit_s=fitted, sample_s=sampled), outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="another configuration (zones of your own: docs/own_zone.md)")
    parser.add_argument("--period", nargs=3, action="append", default=[], metavar=("NAME", "START", "END"), help="a period of your own")
    parser.add_argument("--periods", nargs="+", default=["val2018", "val2021h2"], help=f"of {', '.join(PERIODS)} and --period's")
    parser.add_argument("--weights", nargs="+", type=float, default=[0.0, 0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--priors", nargs="+", type=lambda t: None if t == "none" else float(t), default=[None, 8.0])
    parser.add_argument("--set", type=param, action="append", default=[], metavar="PARAM=VALUE")
    parser.add_argument("--rolling", action="store_true", help="also the weight chosen per issue and horizon week on the track record")
    parser.add_argument("--fit-on", nargs="+", default=[], help="fit the weight per horizon week on these (first) periods, score it on the rest")
    parser.add_argument("--week-weights", nargs=HORIZON_WEEKS, type=float, help="score these weights per horizon week (fitted earlier) as fitted_pooled")
    parser.add_argument("--out", type=Path, default=Path("/tmp/spotcast-combination.csv"))
    args = parser.parse_args()
    args.period_table = {**PERIODS, **{name: (start, end) for name, start, end in args.period}}
    if unknown := set(args.periods) - set(args.period_table):
        parser.error(f"unknown periods {sorted(unknown)}: {', '.join(args.period_table)}")
    if args.periods[: len(args.fit_on)] != args.fit_on:
        parser.error("--fit-on periods must be the first of --periods, in the same order")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("lightning", "lightning.pytorch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    began = time.perf_counter()
    settings = load_settings(args.config)
    history = ReplayFeed.from_settings(settings).history
    forget_recordings()
    tables, fit_rows = [], []
    week_weights = None if args.week_weights is None else np.array(args.week_weights)
    for name in args.periods:
        table, outcomes = evaluate(history, name, args, settings, week_weights)
        tables.append(table)
        if name in args.fit_on:
            fit_rows.append(outcomes)
            if len(fit_rows) == len(args.fit_on):
                week_weights = fitted_weights(pd.concat(fit_rows, ignore_index=True))
                print(f"\n## weight per horizon week fitted on {' '.join(args.fit_on)}: {np.round(week_weights, 3)}")
                week_weights = np.round(week_weights, 2)  # a 0.01 grid: the spread stage runs once per weight
                fit_rows = []
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(args.out, index=False)
    overall = table[(table[ZONE] == ALL)]
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)  # every horizon week of the three scores
    for period, rows in overall.groupby("period", sort=False):
        print(f"\n## {period}")
        print(rows.pivot_table(index=MODEL, columns=HORIZON_WEEK, values=["rmae", "crps", "coverage_10_90"], sort=False).round(3))
    every = overall[overall[HORIZON_WEEK] == ALL]
    in_all = every.groupby(MODEL)["period"].transform("nunique") == every["period"].nunique()  # not fitted_pooled
    mean = every[in_all].groupby(MODEL, sort=False)[["rmae", "crps", "coverage_10_90"]].mean()
    print("\n## mean over the periods (choose here)\n", mean.round(4).sort_values("crps"))
    zone_cover = table[(table[ZONE] != ALL) & (table[HORIZON_WEEK] != ALL)]
    spread = zone_cover.groupby(MODEL, sort=False)["coverage_10_90"].agg(["min", "max"])
    print("\n## 10–90 cover over zone × horizon week × period\n", spread.round(3))
    print(f"\nwall {(time.perf_counter() - began) / 60:.1f} min, peak RSS {peak_mb():.0f} MB; {machine()}; → {args.out}")


if __name__ == "__main__":
    main()
