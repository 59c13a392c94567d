"""Evaluation stage: Occupancy Networks metrics of a checkpoint on held-out assets (a Ray Data job) and its report.

``evaluate`` and ``EvalSummary`` are imported on first use, so importing the config stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrm_dist.eval.job import EvalSummary, evaluate
    from lrm_dist.eval.report import write_report

__all__ = ["EvalSummary", "evaluate", "write_report"]


def __getattr__(name: str):
    if name in ("EvalSummary", "evaluate"):
        from lrm_dist.eval import job

        return getattr(job, name)
    if name == "write_report":
        from lrm_dist.eval.report import write_report

        return write_report
    raise AttributeError(f"module 'lrm_dist.eval' has no attribute {name!r}")
