"""The train / held-out split, in one place: a stable hash of the asset id, so it never depends on
which other assets exist, which shard an asset landed in, or the order anything ran in."""

from __future__ import annotations

import hashlib


def heldout_score(asset_id: str) -> float:
    """A uniform number in [0, 1) fixed by the asset id alone."""
    return int.from_bytes(hashlib.sha256(asset_id.encode()).digest()[:8], "big") / 2**64


def is_heldout(asset_id: str, fraction: float) -> bool:
    """True when ``asset_id`` belongs to the held-out (evaluation) split of size ``fraction``."""
    return fraction > 0 and heldout_score(asset_id) < fraction
