"""A pickled payload as an attacker would plant it in a weight or checkpoint file (a helper, no fixtures:
import it with ``from tests.hostile_pickle``)."""

from __future__ import annotations

import os
from pathlib import Path


class Payload:
    """Unpickling this runs ``touch <marker>``: the marker's existence proves the code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
