"""The GluonTS side of the model: windows → dataset entries, the DeepAR estimator, training and
sampling. Kept apart from the pipeline so the scikit-learn estimator reads as preparation → model.

Every entry is one forecast window (see `forecasting.features.windows`). Training samples exactly
one split per entry – the window's forecast start – so the network learns each horizon step from
the same issue-time information it gets when forecasting.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import lightning
import numpy as np
import pandas as pd
import torch
from gluonts.dataset.field_names import FieldName
from gluonts.torch.distributions import StudentTOutput
from gluonts.torch.model.deepar import DeepAREstimator
from gluonts.torch.model.predictor import PyTorchPredictor
from gluonts.transform.sampler import PredictionSplitSampler

from forecasting.features.windows import Window
from forecasting.schema import HORIZON_HOURS

log = logging.getLogger(__name__)

FREQ = "h"
SHUFFLE_BUFFER = 1024


@contextmanager
def _quiet_gluonts() -> Iterator[None]:
    """gluonts 0.17 indexes tensors with lists; torch warns on every batch. Harmless, and it would
    drown the training progress in the log."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
        yield


def static_reals(window: Window) -> list[float]:
    """Regime of the window (price level and volatility), as the network's static inputs."""
    return [float(np.arcsinh(window.anchor.level / 10.0)), float(np.log(window.anchor.scale))]


def to_entry(window: Window, dynamic: np.ndarray, zone_index: int) -> dict:
    """A GluonTS data entry; `dynamic` is (window hours × features), the target may be shorter."""
    return {
        FieldName.START: pd.Period(window.first_hour.tz_convert(None), freq=FREQ),
        FieldName.TARGET: window.target.astype("float32"),
        FieldName.FEAT_DYNAMIC_REAL: dynamic.T.astype("float32"),
        FieldName.FEAT_STATIC_CAT: np.array([zone_index], dtype=int),
        FieldName.FEAT_STATIC_REAL: np.array(static_reals(window), dtype="float32"),
    }


def make_estimator(
    *,
    num_features: int,
    num_zones: int,
    embedding_dimension: int,
    context_length: int,
    lags_seq: list[int],
    hidden_size: int,
    num_layers: int,
    dropout_rate: float,
    learning_rate: float,
    batch_size: int,
    num_batches_per_epoch: int,
    max_epochs: int,
    num_samples: int,
    root_dir: str,
) -> DeepAREstimator:
    return DeepAREstimator(
        freq=FREQ,
        prediction_length=HORIZON_HOURS,
        context_length=context_length,
        lags_seq=lags_seq,
        time_features=[],  # the calendar features arrive as dynamic reals
        num_feat_dynamic_real=num_features,
        num_feat_static_cat=1,
        cardinality=[num_zones],
        embedding_dimension=[embedding_dimension],
        num_feat_static_real=2,
        scaling=False,  # targets are already anchored (level/scale of the issue instant)
        distr_output=StudentTOutput(),
        hidden_size=hidden_size,
        num_layers=num_layers,
        dropout_rate=dropout_rate,
        lr=learning_rate,
        batch_size=batch_size,
        num_batches_per_epoch=num_batches_per_epoch,
        num_parallel_samples=num_samples,
        train_sampler=PredictionSplitSampler(min_future=HORIZON_HOURS),
        trainer_kwargs={
            "max_epochs": max_epochs,
            "accelerator": "auto",
            "default_root_dir": root_dir,
            "logger": False,
            "enable_model_summary": False,
        },
    )


def train(estimator_kwargs: dict, entries: list[dict], seed: int) -> PyTorchPredictor:
    """Train on `entries`; lightning's checkpoints live in a temporary directory, never the tree."""
    lightning.seed_everything(seed, verbose=False)
    with tempfile.TemporaryDirectory(prefix="spotcast-train-") as root, _quiet_gluonts():
        estimator = make_estimator(**estimator_kwargs, root_dir=root)
        log.info("training DeepAR on %d windows", len(entries))
        return estimator.train(entries, shuffle_buffer_length=SHUFFLE_BUFFER, cache_data=True)


def sample_paths(
    predictor: PyTorchPredictor, entries: Iterable[dict], num_samples: int, seed: int
) -> list[np.ndarray]:
    """Sample paths (num_samples × HORIZON_HOURS) per entry; the same seed gives the same paths."""
    with torch.random.fork_rng(), _quiet_gluonts():
        torch.manual_seed(seed)
        return [f.samples for f in predictor.predict(list(entries), num_samples=num_samples)]
