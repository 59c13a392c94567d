"""SM clock and board power, sampled by ``nvidia-smi`` while a benchmark's timed loop runs.

A GPU under sustained tensor-core load lowers its clock to stay inside its power limit, so milliseconds from
different runs compare only at known clocks: the benchmarks print what the GPU ran at next to each timing.
"""

from __future__ import annotations

import shutil
import subprocess

import torch


class ClockSampler:
    """Context manager: samples the current CUDA device every ``period_ms``; ``summary()`` after the block."""

    def __init__(self, period_ms: int = 100) -> None:
        self.period_ms = period_ms
        self.samples: list[tuple[float, float]] = []  # (SM MHz, W)
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> ClockSampler:
        if torch.cuda.is_available() and shutil.which("nvidia-smi"):
            gpu = f"GPU-{torch.cuda.get_device_properties(torch.cuda.current_device()).uuid}"
            self._proc = subprocess.Popen(
                ["nvidia-smi", "-i", gpu, "--query-gpu=clocks.sm,power.draw", "--format=csv,noheader,nounits",
                 "-lms", str(self.period_ms)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        self._proc.terminate()  # our own child, by handle
        try:
            out, _ = self._proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
        self._proc = None
        for line in out.splitlines():
            try:
                mhz, watts = (float(v) for v in line.split(","))
            except ValueError:  # "[N/A]" or a partial last line
                continue
            self.samples.append((mhz, watts))

    def summary(self) -> tuple[str, str]:
        """(mean SM MHz, mean W) over the samples, or blanks where nvidia-smi gave none."""
        if not self.samples:
            return "", ""
        n = len(self.samples)
        return f"{sum(s[0] for s in self.samples) / n:.0f}", f"{sum(s[1] for s in self.samples) / n:.0f}"
