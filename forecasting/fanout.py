"""Fan-outs: how a backtest or a study runs its independent items (fits, chunks of issues, trials).

    in_process       one item after the other in this process (the default)
    ProcessFanout    N spawned worker processes of this machine, no Prefect or Dask needed (notebooks,
                     benchmarks): `with ProcessFanout(2) as fanout: backtest(..., fanout=fanout)`
                     (every fan-out is a context manager: this one stops its processes at the end)
    flows.cluster    DaskFanout: one Prefect task run per item on a Dask cluster (`--workers`)

Two ways to run items on one:
    fanout(function, shared, items, description)    every item at once; the results in item order
    fanout.stream(function, shared, next_item, on_result, slots, label)
        items made one at a time, while fewer than `slots` run, and each result handed to
        `on_result` as soon as it is done: a study asks its next trial when a worker frees up
        and tells each trial as it finishes.
Every fan-out gives the same results: the items are pure functions of their inputs.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import cloudpickle

from forecasting import progress

Function = Callable[[Any, Any], Any]  # function(shared, item) -> result
NextItem = Callable[[], Any]  # the next item to start, or None when none can start now
OnResult = Callable[[int, Any], Any]  # (the item's place in the order started, its result)


class Fanout(ABC):
    """Runs `function(shared, item)` for items. `shared` is the same for every item (the history): a
    fan-out to other processes ships it to each once. The function and items must pickle
    (cloudpickle) when the fan-out runs them elsewhere."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop what the fan-out started (worker processes); nothing for most."""
        return None

    @abstractmethod
    def _submit(self, function: Function, shared: Any, item: Any, label: str) -> Any:
        """Start one item (`shared` as `_share` made it); its future."""

    @abstractmethod
    def _first_done(self, pending: list[Any]) -> Any:
        """Wait until one of the pending futures is done; that one."""

    def _result(self, future: Any) -> Any:
        return future.result()

    def _share(self, shared: Any) -> Any:
        """What the items of one run get as `shared` (a file, a scattered future)."""
        return shared

    def _unshare(self, shared: Any) -> None:
        """Release what `_share` made, once the run's items are done."""
        return None  # the object itself: nothing to release

    def _abandon(self, pending: list[Any], error: BaseException) -> None:
        """The run stopped (`error`: Ctrl-C, SIGTERM, a failed item) with these futures unfinished:
        stop what can be stopped of them; nothing for most."""
        return None

    def stream(
        self,
        function: Function,
        shared: Any,
        next_item: NextItem,
        on_result: OnResult,
        slots: int,
        label: Callable[[int, Any], str],
    ) -> None:
        """Start items from `next_item()` while fewer than `slots` run and it has one; hand each result
        to `on_result` in this process as soon as it is done; return when nothing runs and
        `next_item()` has none. `label(index, item)` names an item's task."""
        handle = self._share(shared)
        pending: list[tuple[Any, int]] = []  # (future, index), in the order started
        started = 0
        try:
            while True:
                while len(pending) < slots and (item := next_item()) is not None:
                    pending.append((self._submit(function, handle, item, label(started, item)), started))
                    started += 1
                if not pending:
                    return
                done = self._first_done([future for future, _ in pending])
                place = next(k for k, (future, _) in enumerate(pending) if future is done)
                future, index = pending.pop(place)
                on_result(index, self._result(future))
        except BaseException as error:
            self._abandon([future for future, _ in pending], error)
            raise
        finally:
            self._unshare(handle)

    def __call__(self, function: Function, shared: Any, items: Sequence[Any], description: str) -> list[Any]:
        """Every item at once (the executor queues what it cannot start); the results in item order."""
        results: list[Any] = [None] * len(items)
        queue = iter(items)
        with progress.task(description, total=len(items)) as step:

            def keep(index: int, result: Any) -> None:
                results[index] = result
                step.advance()

            self.stream(
                function, shared, lambda: next(queue, None), keep, len(items),
                lambda index, _: f"{description} {index + 1}/{len(items)}",
            )  # fmt: skip
        return results


class InProcess(Fanout):
    """One item after the other in this process: an item runs when it is waited for, in the order
    started, so a stream of `slots` items asks its items as a cluster of that many workers would."""

    def _submit(self, function: Function, shared: Any, item: Any, label: str) -> tuple[Function, Any, Any]:
        return (function, shared, item)

    def _first_done(self, pending: list[Any]) -> Any:
        return pending[0]

    def _result(self, future: tuple[Function, Any, Any]) -> Any:
        function, shared, item = future
        return function(shared, item)


in_process = InProcess()

_loaded: dict[str, Any] = {}  # in a worker: the shared inputs read so far, by file


def _run(shared_file: str, payload: bytes) -> Any:
    if shared_file not in _loaded:
        _loaded.clear()  # a new shared input replaces the old one (one history at a time)
        _loaded[shared_file] = pickle.loads(Path(shared_file).read_bytes())
    function, item = cloudpickle.loads(payload)
    return function(_loaded[shared_file], item)


class ProcessFanout(Fanout):
    """A `Fanout` on `workers` spawned processes of this machine that live as long as the `with`
    block. The shared input is written once to a temporary file that each worker reads once, not
    pickled into every item; items and functions go by cloudpickle (lambdas included). Workers are
    not daemons, so a fit inside one may start its own member processes."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._folder = tempfile.TemporaryDirectory(prefix="spotcast-fanout-")
        self._shared: list[tuple[Any, str]] = []  # (object, file): kept alive so ids stay unique
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pool.shutdown(cancel_futures=True)
        self._folder.cleanup()

    def _share(self, shared: Any) -> str:
        for known, path in self._shared:
            if known is shared:
                return path
        path = str(Path(self._folder.name) / f"shared-{len(self._shared)}.pickle")
        with open(path, "wb") as handle:  # streamed: no second copy of the history in memory
            pickle.dump(shared, handle, protocol=pickle.HIGHEST_PROTOCOL)
        self._shared.append((shared, path))
        return path

    def _submit(self, function: Function, shared: str, item: Any, label: str) -> Future:
        return self._pool.submit(_run, shared, cloudpickle.dumps((function, item)))

    def _first_done(self, pending: list[Future]) -> Future:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        return next(future for future in pending if future in done)
