import numpy as np

from lrm_dist.shards.split import heldout_score, is_heldout


def test_split_is_stable_and_sized():
    ids = [f"asset-{i:06d}" for i in range(20000)]
    held = [a for a in ids if is_heldout(a, 0.2)]
    assert abs(len(held) / len(ids) - 0.2) < 0.01
    assert held == [a for a in ids if is_heldout(a, 0.2)]  # deterministic
    # growing the fraction only adds assets: nothing moves from held-out back into training
    assert set(held) <= {a for a in ids if is_heldout(a, 0.3)}
    assert not any(is_heldout(a, 0.0) for a in ids[:100])
    scores = np.array([heldout_score(a) for a in ids])
    assert 0 <= scores.min() and scores.max() < 1
