"""The hydro balance as a model covariate: each week's reservoir filling against its normal band.

`reservoir_deviation` = (filling − normal median) / (normal max − normal min), per zone and week: how
many widths of the week's normal band the reservoirs sit above (+) or below (−) the median. Dividing
by the band makes it comparable across zones of 6 and 34 TWh and across seasons (the spring band is
wide, the autumn one narrow), so one scaler and one network serve all zones. It is derived from the
four weekly lake series (`docs/hydro.md`) and stamped with the newest of their publication instants,
so a window sees a week's deviation only once that week's filling is public; on the hourly grid it is
held from the week's start hour on (`covariates.HOLD`). A zone without a normal band (ENTSO-E A72
zones) has no deviation: the covariate is missing there and the network sees its mean.
"""

from __future__ import annotations

import pandas as pd

from forecasting.schema import (
    DELIVERY_HOUR,
    DERIVED_COVARIATES,
    PRICE,
    PUBLISHED_AT,
    RESERVOIR_DEVIATION,
    RESERVOIR_FILLING,
    RESERVOIR_NORMAL,
    SERIES_COL,
    UNIT,
    VALUE,
    ZONE,
)

NORMAL_MIN, NORMAL_MEDIAN, NORMAL_MAX = RESERVOIR_NORMAL
_SOURCES = DERIVED_COVARIATES[RESERVOIR_DEVIATION]


def with_derived_covariates(history: pd.DataFrame, covariates: tuple[str, ...]) -> pd.DataFrame:
    """`history` plus the rows of the derived covariates it asks for and does not hold yet."""
    if RESERVOIR_DEVIATION not in covariates or (history[SERIES_COL] == RESERVOIR_DEVIATION).any():
        return history
    return pd.concat([history, reservoir_deviation(history)], ignore_index=True)


def reservoir_deviation(history: pd.DataFrame) -> pd.DataFrame:
    """Rows of `reservoir_deviation` (band widths, see the module) for every zone and week holding
    all four weekly series, from the zone's first price hour on (the hydro history reaches back to
    1995, the prices to 2015: older weeks would only stretch the hourly grid)."""
    weekly = history[history[SERIES_COL].isin(_SOURCES)]
    values = weekly.pivot_table(index=[ZONE, DELIVERY_HOUR], columns=SERIES_COL, values=VALUE, aggfunc="last")
    published = weekly.groupby([ZONE, DELIVERY_HOUR])[PUBLISHED_AT].max()
    if not set(_SOURCES) <= set(values.columns):
        return history.iloc[:0]
    width = values[NORMAL_MAX] - values[NORMAL_MIN]
    deviation = ((values[RESERVOIR_FILLING] - values[NORMAL_MEDIAN]) / width.where(width > 0)).dropna()
    rows = deviation.rename(VALUE).reset_index()
    rows[PUBLISHED_AT] = published.reindex(deviation.index).to_numpy()
    first_price = history[history[SERIES_COL] == PRICE].groupby(ZONE)[DELIVERY_HOUR].min()
    rows = rows[rows[DELIVERY_HOUR] >= rows[ZONE].map(first_price)]
    rows[SERIES_COL] = RESERVOIR_DEVIATION
    rows[UNIT] = "band widths"
    return rows.reindex(columns=history.columns)
