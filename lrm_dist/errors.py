"""Errors a user can act on: the CLI and the job scripts print them as one line and exit 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a busy or unusable place to work; the message names the input and says what to do."""


class WorkdirBusy(UserError):
    """Another live job holds the lock on the folder this job would write."""
