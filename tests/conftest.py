"""Shared test set-up: quiet progress bars, no usage stats.

Ray's loopback pinning is deliberately NOT set here: ``lrm_dist.ray_utils.init_ray`` must do it
itself (tests/test_ray_utils.py checks it in a fresh process), and a suite-wide setting would hide a leak.
"""

import os

os.environ.setdefault("LRM_DIST_PROGRESS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
