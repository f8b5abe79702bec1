"""Fan-outs: a map returns results in item order; a stream starts items while slots are free and
hands each result over as soon as it is done (a study tells a trial before slower ones finish)."""

import time
from collections.abc import Callable

import pytest

from forecasting.fanout import Fanout, InProcess, ProcessFanout


def label(index: int, seconds: float) -> str:
    return f"sleep {index}"


def slept(shared: float, seconds: float) -> float:
    time.sleep(seconds)
    return shared + seconds


def stream(fanout: Fanout, items: list[float], slots: int) -> list[tuple[int, float]]:
    seen: list[tuple[int, float]] = []
    queue = iter(items)
    fanout.stream(slept, 10.0, lambda: next(queue, None), lambda k, r: seen.append((k, r)), slots, label)
    return seen


def test_a_stream_on_processes_hands_over_the_quick_item_first():
    with ProcessFanout(2) as fanout:
        assert stream(fanout, [3.0, 0.0], slots=2) == [(1, 10.0), (0, 13.0)]
        assert fanout(slept, 10.0, [3.0, 0.0], "sleeps") == [13.0, 10.0]  # a map: item order


def test_in_process_runs_items_in_the_order_started():
    assert stream(InProcess(), [0.2, 0.0, 0.1], slots=2) == [(0, 10.2), (1, 10.0), (2, 10.1)]


@pytest.mark.parametrize("make", [InProcess, lambda: ProcessFanout(2)], ids=["in_process", "processes"])
def test_an_item_that_waits_for_a_result_starts_once_it_is_there(make: Callable[[], Fanout]):
    seen: list[tuple[int, float]] = []
    waiting = [0.5, 0.0]  # the second item may start only once the first is done

    def next_item() -> float | None:
        if len(waiting) == 1 and not seen:
            return None  # its turn has not come
        return waiting.pop(0) if waiting else None

    with make() as fanout:
        fanout.stream(slept, 1.0, next_item, lambda k, r: seen.append((k, r)), 2, label)
    assert seen == [(0, 1.5), (1, 1.0)]
