import random

import pytest

from zstc_cli.pipeline import windows
from zstc_cli.scorers.batching import plan_batches


def test_windows_are_consecutive_and_bounded():
    assert list(windows(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(windows([], 3)) == []
    with pytest.raises(ValueError):
        list(windows(range(3), 0))


def test_growing_windows_double_from_the_first_and_are_clipped_by_the_size():
    sizes = [len(window) for window in windows(range(100), 48, first=32)]
    assert sizes == [32, 48, 20]  # 32, then 64 clipped to 48, then the rest
    assert [len(window) for window in windows(range(200), 150, first=32)] == [32, 64, 104]
    assert [len(window) for window in windows(range(10), 48, first=32)] == [10]


def test_windows_read_lazily():
    consumed = []

    def source():
        for i in range(100):
            consumed.append(i)
            yield i

    first = next(windows(source(), 10))
    assert first == list(range(10)) and len(consumed) == 10


@pytest.mark.parametrize("seed", range(5))
def test_plan_respects_budget_and_keeps_every_index(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(3, 200) for _ in range(500)]
    batches = plan_batches(lengths, max_tokens=1024, max_batch=16)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(500))
    for batch in batches:
        assert len(batch) <= 16
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 1024


def test_plan_sorts_by_length_longest_first():
    lengths = [5, 50, 10, 40, 20]
    batches = plan_batches(lengths, max_tokens=80, max_batch=8)
    assert batches[0] == [1]
    order = [lengths[i] for batch in batches for i in batch]
    assert order == sorted(lengths, reverse=True)


def test_oversized_sequence_gets_its_own_batch():
    assert plan_batches([1000, 3, 3], max_tokens=100, max_batch=8) == [[0], [1, 2]]


def test_windows_close_early_at_a_weight_budget():
    assert list(windows([5, 1, 1, 9, 1, 1, 1], 4, weight=lambda x: x, max_weight=6)) == [[5, 1], [1, 9], [1, 1, 1]]
