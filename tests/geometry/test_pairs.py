"""pair_chunks: every (item, k) pair exactly once, in chunks of whole items within the bound."""

import numpy as np
import pytest

from lrm_dist.geometry.pairs import pair_chunks


@pytest.mark.parametrize("max_pairs", [1, 3, 5, 100])
def test_every_pair_once_in_bounded_chunks_of_whole_items(max_pairs):
    counts = np.array([2, 0, 3, 1, 0, 4, 1])
    seen, last_end = [], 0
    for begin, end, item, k in pair_chunks(counts, max_pairs):
        assert begin == last_end and end > begin
        assert len(item) <= max_pairs or end == begin + 1  # one item over the bound makes a chunk alone
        assert set(item.tolist()) <= set(range(begin, end))
        seen += list(zip(item.tolist(), k.tolist()))
        last_end = end
    assert last_end == len(counts)
    assert seen == [(i, j) for i, n in enumerate(counts) for j in range(n)]


def test_no_items_no_chunks():
    assert list(pair_chunks(np.array([], dtype=np.int64), 10)) == []
