"""The GluonTS side of the model: windows → dataset entries, the DeepAR estimator, training and
sampling. Kept apart from the pipeline so the scikit-learn estimator reads as preparation → model.

Every entry is one forecast window (see `forecasting.features.windows`). Training samples exactly
one split per entry – the window's forecast start – so the network learns each horizon step from
the same issue-time information it gets when forecasting.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import lightning
import numpy as np
import pandas as pd
import torch
from gluonts.dataset.field_names import FieldName
from gluonts.torch.distributions import StudentTOutput
from gluonts.torch.model.deepar import DeepAREstimator
from gluonts.torch.model.predictor import PyTorchPredictor
from gluonts.transform.sampler import PredictionSplitSampler

from forecasting import progress
from forecasting.features.windows import Window
from forecasting.lake.files import atomic_write
from forecasting.schema import HORIZON_HOURS

log = logging.getLogger(__name__)

FREQ = "h"
SHUFFLE_BUFFER = 1024


@contextmanager
def _quiet_gluonts() -> Iterator[None]:
    """Notices about the libraries' own code, not ours, that would drown the training progress:
    gluonts 0.17 indexes tensors with lists (torch warns on every batch), its lightning module
    defines a validation step we do not use, lightning calls a deprecated torch API and prints tips.
    Levels and filters are restored on the way out."""
    loggers = [logging.getLogger(name) for name in ("lightning", "lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_dataloader`")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
        for logger in loggers:  # lightning's tips and device notices (its loggers print on their own)
            logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


@contextmanager
def _own_shuffle_random(seed: int) -> Iterator[None]:
    """The one patch of GluonTS internals for training, process-wide while the block runs.

    Upstream: gluonts 0.17 shuffles the training windows in `gluonts.itertools.PseudoShuffled`,
    which draws with the module-global `random.randrange` and takes no seed or generator of its
    own. Other threads of the process draw from that generator too (a Dask worker's event loop,
    Prefect's clients), so a fit there would depend on their timing. The name `random` in
    `gluonts.itertools` is the only handle: it is pointed at a generator of the fit's own, seeded as
    `seed_everything` seeds the global one, so a fit is the same in any process, and the same as in
    a quiet one; it is restored on the way out."""
    import gluonts.itertools

    shared = gluonts.itertools.random
    gluonts.itertools.random = random.Random(seed)
    try:
        yield
    finally:
        gluonts.itertools.random = shared


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
    callbacks: list[lightning.Callback] | None = None,
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
        # the LSTM drops out between its layers only: one layer has none (torch warns otherwise)
        dropout_rate=dropout_rate if num_layers > 1 else 0.0,
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
            "enable_progress_bar": False,
            "callbacks": callbacks or [],
        },
    )


@dataclass(frozen=True)
class TrainingSet:
    """Training windows as flat float32 files in `folder` (written once, memory-mapped by every
    ensemble member): a member process reads the same pages instead of a pickled copy, and the
    windows never sit in memory as Python objects."""

    folder: str
    count: int
    hours: int  # window length: past + horizon
    features: int

    def _array(self, name: str, *shape: int) -> np.ndarray:
        return np.memmap(Path(self.folder) / f"{name}.f32", dtype="float32", mode="r", shape=shape)

    def entries(self) -> list[dict]:
        target = self._array("target", self.count, self.hours)
        dynamic = self._array("dynamic", self.count, self.features, self.hours)
        static = self._array("static", self.count, 3)  # zone index, then the static reals
        starts = np.fromfile(Path(self.folder) / "start.i8", dtype="int64")
        return [
            {
                FieldName.START: pd.Period(pd.Timestamp(int(starts[i])), freq=FREQ),
                FieldName.TARGET: target[i],
                FieldName.FEAT_DYNAMIC_REAL: dynamic[i],
                FieldName.FEAT_STATIC_CAT: np.array([int(static[i, 0])], dtype=int),
                FieldName.FEAT_STATIC_REAL: np.asarray(static[i, 1:]),
            }
            for i in range(self.count)
        ]


class TrainingSetWriter:
    """Appends windows to the files of a `TrainingSet` (plain writes: the page cache, not this
    process, holds them)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.count = 0
        self.hours = self.features = 0
        self._files = {
            name: open(Path(folder) / name, "wb")  # noqa: SIM115 - closed in close()
            for name in ("target.f32", "dynamic.f32", "static.f32", "start.i8")
        }

    def add(self, window: Window, dynamic: np.ndarray, zone_index: int) -> None:
        """`dynamic` is (window hours × features); the target covers the whole window."""
        self.hours, self.features = dynamic.shape
        static = np.array([zone_index, *static_reals(window)], dtype="float32")
        self._files["target.f32"].write(window.target.astype("float32").tobytes())
        self._files["dynamic.f32"].write(np.ascontiguousarray(dynamic.T, dtype="float32").tobytes())
        self._files["static.f32"].write(static.tobytes())
        self._files["start.i8"].write(np.int64(window.first_hour.tz_convert(None).value).tobytes())
        self.count += 1

    def close(self) -> TrainingSet:
        for handle in self._files.values():
            handle.close()
        return TrainingSet(self.folder, self.count, self.hours, self.features)


class EpochLog(lightning.Callback):
    """Writes `<epochs done> <train loss>` to a file after every epoch: how a member training in
    another process tells the parent's progress display how far it is."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        loss = float(trainer.callback_metrics.get("train_loss", float("nan")))
        with atomic_write(self.path) as temporary:  # the watcher never reads half a line
            temporary.write_text(f"{trainer.current_epoch + 1} {loss}")


class _EpochWatcher(threading.Thread):
    """Polls the members' epoch files and advances their progress steps."""

    def __init__(self, files: list[Path], steps: list[progress.Step]) -> None:
        super().__init__(daemon=True)
        self.files, self.steps = files, steps
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.poll()

    def poll(self) -> None:
        for file, step in zip(self.files, self.steps, strict=True):
            try:
                epochs, loss = file.read_text().split()
            except (OSError, ValueError):
                continue
            if int(epochs) > step.completed:
                step.advance(int(epochs) - step.completed, detail=f"loss {float(loss):.3f}")

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.poll()


def train_member(estimator_kwargs: dict, training: TrainingSet, seed: int, out: str, threads: int) -> str:
    """Train one ensemble member and serialize its predictor to `out` (runs in a worker process when
    members train in parallel). Lightning's checkpoints live in a temporary directory; the epochs
    done are written to `<out>.epochs`."""
    if threads:
        torch.set_num_threads(threads)
    lightning.seed_everything(seed, verbose=False)
    with (
        tempfile.TemporaryDirectory(prefix="spotcast-train-") as root,
        _quiet_gluonts(),
        _own_shuffle_random(seed),
    ):
        estimator = make_estimator(
            **estimator_kwargs, root_dir=root, callbacks=[EpochLog(Path(f"{out}.epochs"))]
        )
        predictor = estimator.train(training.entries(), shuffle_buffer_length=SHUFFLE_BUFFER)
    Path(out).mkdir(parents=True, exist_ok=True)
    predictor.serialize(Path(out))
    return out


def train_ensemble(
    estimator_kwargs: dict, training: TrainingSet, seeds: list[int], workers: int
) -> list[PyTorchPredictor]:
    """One predictor per seed. With `workers` > 1 the members train in that many spawned processes
    of cores // workers torch threads each (at least one)."""
    outs = [str(Path(training.folder) / f"member-{k}") for k in range(len(seeds))]
    log.info("training %d DeepAR member(s) on %d windows, %d at a time", len(seeds), training.count, workers)
    epochs = estimator_kwargs["max_epochs"]
    with ExitStack() as stack:
        steps = [
            stack.enter_context(progress.task(f"training member {k + 1}/{len(seeds)}", total=epochs))
            for k in range(len(seeds))
        ]
        watcher = _EpochWatcher([Path(f"{out}.epochs") for out in outs], steps)
        watcher.start()
        try:
            _run_members(estimator_kwargs, training, seeds, outs, workers)
        finally:
            watcher.stop()
    return [PyTorchPredictor.deserialize(Path(out), device="cpu") for out in outs]


def _run_members(
    estimator_kwargs: dict, training: TrainingSet, seeds: list[int], outs: list[str], workers: int
) -> None:
    if workers <= 1:
        for seed, out in zip(seeds, outs, strict=True):
            train_member(estimator_kwargs, training, seed, out, threads=0)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = [
            pool.submit(train_member, estimator_kwargs, training, seed, out, threads)
            for seed, out in zip(seeds, outs, strict=True)
        ]
        for job in jobs:
            job.result()


def sample_paths(
    predictor: PyTorchPredictor, entries: Iterable[dict], num_samples: int, seed: int
) -> list[np.ndarray]:
    """Sample paths (num_samples × HORIZON_HOURS) per entry; the same seed gives the same paths, on
    any machine: sampling runs on one torch thread. Its 672 small steps gain nothing from a second
    thread, and lose ten times over when other work keeps the cores busy (measured on 2 cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(), _quiet_gluonts(), _without_distribution_checks():
            torch.manual_seed(seed)
            return [f.samples for f in predictor.predict(list(entries), num_samples=num_samples)]
    finally:
        torch.set_num_threads(threads)


@contextmanager
def _without_distribution_checks() -> Iterator[None]:
    """The one patch of torch's defaults for sampling, process-wide while the block runs.

    Upstream: torch checks a distribution's arguments whenever one is made
    (`Distribution._validate_args`, on unless Python runs with -O), and GluonTS makes the per-step
    StudentT itself (`DistributionOutput.distribution`) without a `validate_args` to pass; the only
    switch is the class-wide default (`Distribution.set_default_validate_args`). Sampling makes 672
    per-step distributions whose checks cost ~5 % of it and change no value. Training keeps the
    checks: they are how a diverging fit stops (see `forecasting.tuning.trial`). The flag is restored
    on the way out; while it is off, a distribution made in another thread is not checked either."""
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)
