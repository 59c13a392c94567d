"""Shared test set-up: quiet progress bars and Ray pinned to loopback."""

import os

os.environ.setdefault("LRM_DIST_PROGRESS", "0")
os.environ.setdefault("RAY_NODE_IP_ADDRESS", "127.0.0.1")
# Ray on Linux replaces 127.0.0.1 by the machine's address unless "cluster mode" is off: keep it on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
