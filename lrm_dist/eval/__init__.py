"""Evaluation stage: Occupancy Networks metrics of a checkpoint on held-out assets (a Ray Data job) and its report."""

from lrm_dist.exports import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "EvalSummary": "lrm_dist.eval.stage",
    "evaluate": "lrm_dist.eval.stage",
    "write_report": "lrm_dist.eval.report",
})
