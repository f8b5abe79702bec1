"""Fan-outs hand each result to `on_result` as soon as its item is done, and return them in item
order: a study tells a finished trial before the slower ones of its batch are done."""

import time

import pytest

from forecasting.evaluation.fanout import ProcessFanout, in_process


def slept(shared: float, seconds: float) -> float:
    time.sleep(seconds)
    return shared + seconds


@pytest.mark.parametrize("process_fanout", [False, True])
def test_results_are_seen_as_they_finish_and_returned_in_item_order(process_fanout: bool):
    seen: list[tuple[int, float]] = []
    items = [3.0, 0.0]  # the first item takes longest
    if process_fanout:
        with ProcessFanout(2) as fanout:
            results = fanout(slept, 10.0, items, "sleeps", on_result=lambda k, r: seen.append((k, r)))
        assert seen == [(1, 10.0), (0, 13.0)]  # the quick one first
    else:
        results = in_process(slept, 10.0, items, "sleeps", on_result=lambda k, r: seen.append((k, r)))
        assert seen == [(0, 13.0), (1, 10.0)]  # one after the other
    assert results == [13.0, 10.0]
