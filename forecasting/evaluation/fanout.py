"""Fan-outs: how a backtest or a study runs its independent items (fits, chunks of issues, trials).

    in_process       one item after the other in this process (the default)
    ProcessFanout    N spawned worker processes of this machine, no Prefect or Dask needed (notebooks,
                     benchmarks): `with ProcessFanout(2) as fanout: backtest(..., fanout=fanout)`
    flows.cluster    one Prefect task run per item on a Dask cluster (`spotcast backtest --workers`)

Every fan-out gives the same results in item order: the items are pure functions of their inputs.
`on_result(index, result)`, where given, sees each result in this process as soon as its item is
done (in the order they finish): a study tells a finished trial at once, so a killed batch keeps it.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

import cloudpickle

from forecasting import progress

F = TypeVar("F")  # a future of a fan-out's executor
OnResult = Callable[[int, Any], Any]  # (item index, its result), called as each item is done


class Fanout(Protocol):
    """Runs `function(shared, item)` for every item and returns the results in item order. `shared`
    is the same for every item (the history): a fan-out to other processes ships it to each once.
    The function and items must pickle (cloudpickle) when the fan-out runs them elsewhere."""

    def __call__(
        self,
        function: Callable[[Any, Any], Any],
        shared: Any,
        items: Sequence[Any],
        description: str,
        on_result: OnResult | None = None,
    ) -> list[Any]: ...


def in_process(
    function: Callable[[Any, Any], Any],
    shared: Any,
    items: Sequence[Any],
    description: str,
    on_result: OnResult | None = None,
) -> list[Any]:
    """The serial fan-out: one item after the other in this process, with a progress task."""
    results = []
    for index, item in enumerate(progress.track(items, description)):
        results.append(function(shared, item))
        if on_result is not None:
            on_result(index, results[-1])
    return results


def gather(
    futures: Sequence[F],
    completed: Callable[[Sequence[F]], Iterable[F]],
    description: str,
    on_result: OnResult | None = None,
) -> list[Any]:
    """The futures' results in their order, waiting on them as `completed` (an executor's
    as_completed) yields them, so that `on_result` sees each result as soon as it is there."""
    position = {id(future): index for index, future in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for future in progress.track(completed(futures), description, total=len(futures)):
        index = position[id(future)]
        results[index] = future.result()  # type: ignore[attr-defined]
        if on_result is not None:
            on_result(index, results[index])
    return results


_loaded: dict[str, Any] = {}  # in a worker: the shared inputs read so far, by file


def _run(shared_file: str, payload: bytes) -> Any:
    if shared_file not in _loaded:
        _loaded.clear()  # a new shared input replaces the old one (one history at a time)
        _loaded[shared_file] = pickle.loads(Path(shared_file).read_bytes())
    function, item = cloudpickle.loads(payload)
    return function(_loaded[shared_file], item)


class ProcessFanout:
    """A `Fanout` on `workers` spawned processes of this machine that live as long as the `with`
    block. The shared input is written once to a temporary file that each worker reads once, not
    pickled into every item; items and functions go by cloudpickle (lambdas included). Workers are
    not daemons, so a fit inside one may start its own member processes."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._folder = tempfile.TemporaryDirectory(prefix="spotcast-fanout-")
        self._shared: list[tuple[Any, str]] = []  # (object, file): kept alive so ids stay unique
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._folder.cleanup()

    def _file_of(self, shared: Any) -> str:
        for known, path in self._shared:
            if known is shared:
                return path
        path = str(Path(self._folder.name) / f"shared-{len(self._shared)}.pickle")
        with open(path, "wb") as handle:  # streamed: no second copy of the history in memory
            pickle.dump(shared, handle, protocol=pickle.HIGHEST_PROTOCOL)
        self._shared.append((shared, path))
        return path

    def __call__(
        self,
        function: Callable[[Any, Any], Any],
        shared: Any,
        items: Sequence[Any],
        description: str,
        on_result: OnResult | None = None,
    ) -> list[Any]:
        path = self._file_of(shared)
        futures = [self._pool.submit(_run, path, cloudpickle.dumps((function, item))) for item in items]
        return gather(futures, as_completed, description, on_result)
