"""Packing (premise, hypothesis) pairs into batches: bounded windows, length sorting, a token budget.

Padding is the main waste when texts of different lengths share a batch, so pairs are sorted by length
inside a window of records and packed until ``pairs x longest`` would exceed the token budget. Windows keep
memory bounded by the window size, not the input size, and each window is written in input order.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_MAX_TOKENS = 8192
DEFAULT_BATCH_SIZE = 128
CPU_MAX_TOKENS = 2048
CPU_BATCH_SIZE = 64
"""The CPU's budget is smaller because a CPU's batch should fit its caches: smaller activations stay there,
while a GPU needs the larger budget to be kept busy (figures: docs/design.md, "Budget per device")."""


def budget(device_type: str, max_tokens: int | None = None, batch_size: int | None = None) -> tuple[int, int]:
    """Token budget and pairs per batch: as given, else the device's default (smaller on the CPU, see above)."""
    tokens, pairs = (
        (CPU_MAX_TOKENS, CPU_BATCH_SIZE) if device_type == "cpu" else (DEFAULT_MAX_TOKENS, DEFAULT_BATCH_SIZE)
    )
    return tokens if max_tokens is None else max_tokens, pairs if batch_size is None else batch_size


def plan_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[list[int]]:
    """Group sequence indices into batches whose padded size (count x longest) stays within ``max_tokens``.

    Longest sequences come first so that an out-of-memory error, if any, happens at the start of a run.
    A sequence longer than the budget on its own still gets a batch of one: it is never dropped.
    """
    if max_tokens < 1 or max_batch < 1:
        raise ValueError("max_tokens and max_batch must be at least 1")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted descending: the first member of a batch is its longest, so it sets the padded width.
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) >= max_batch or (len(current) + 1) * longest > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
