"""The seeded sample ``--adapt`` fits on: drawn in one pass over a stream, the same items on every rerun."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def reservoir(items: Iterable[T], size: int, seed: int) -> list[T]:
    """A uniform sample of at most ``size`` of ``items`` (reservoir sampling, seeded), in their order.

    One pass and ``size`` items of memory, whatever the length of the stream: the input need not be counted
    first, and a rerun over the same stream with the same seed picks the same items."""
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, T]] = []
    for seen, item in enumerate(items):
        if len(chosen) < size:
            chosen.append((seen, item))
        else:
            slot = int(rng.integers(0, seen + 1))
            if slot < size:
                chosen[slot] = (seen, item)
    return [item for _, item in sorted(chosen, key=lambda pair: pair[0])]
