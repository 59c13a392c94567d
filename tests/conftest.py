"""Shared test set-up: quiet progress bars, no usage stats, an exit that keeps pytest's status.

Ray's loopback pinning is deliberately NOT set here: ``lrm_dist.ray_utils.init_ray`` must do it
itself (tests/test_ray_utils.py checks it in a fresh process), and a suite-wide setting would hide a leak.
"""

import atexit
import os
import sys

import pytest

_EXIT_STATUS = pytest.StashKey[int]()

os.environ.setdefault("LRM_DIST_PROGRESS", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_sessionfinish(session, exitstatus):
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the test process once pytest has reported, after the atexit handlers but without the interpreter's
    finalisation: a library's background thread (a native callback into freed code, seen twice on 2-core
    runs) can segfault there, after the summary, and turn a green run into exit code 139."""
    status = config.stash.get(_EXIT_STATUS, None)
    if status is None:
        return
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
