"""Expanding per-item counts into (item, k) pairs in bounded chunks: vectorised candidate tests without
an unbounded pair array (the inside test's point-triangle pairs, the rasteriser's pixel-triangle pairs)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def pair_chunks(counts: np.ndarray, max_pairs: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Every pair (item, k) with 0 <= k < counts[item], in chunks of whole items holding at most ``max_pairs``
    pairs (an item with more makes a chunk alone): yields (begin, end, item [P], k [P]), items in [begin, end)."""
    counts = np.asarray(counts, dtype=np.int64)
    cum = np.cumsum(counts)
    begin = 0
    while begin < len(counts):
        done = cum[begin - 1] if begin else 0
        end = max(int(np.searchsorted(cum, done + max_pairs, side="right")), begin + 1)
        chunk = counts[begin:end]
        item = np.repeat(np.arange(begin, end), chunk)
        k = np.arange(chunk.sum()) - np.repeat(np.cumsum(chunk) - chunk, chunk)
        yield begin, end, item, k
        begin = end
