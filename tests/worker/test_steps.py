"""The step counter."""

from __future__ import annotations

import threading

import pytest

from worker._steps import StepCounter

pytestmark = pytest.mark.timeout(30)


def test_percentage_is_exact_integer_division() -> None:
    counter = StepCounter()
    counter.reset(100)

    percentages = [counter.increment() for _ in range(100)]

    assert percentages == list(range(1, 101))


def test_count_stops_at_total() -> None:
    counter = StepCounter()
    counter.reset(2)

    assert [counter.increment() for _ in range(4)] == [50, 100, 100, 100]


def test_no_total_gives_none() -> None:
    counter = StepCounter()

    assert counter.increment() is None
    assert counter.percentage() is None


def test_threads_count_every_step() -> None:
    counter = StepCounter()
    counter.reset(4000)

    def count() -> None:
        for _ in range(1000):
            counter.increment()

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert counter.percentage() == 100
