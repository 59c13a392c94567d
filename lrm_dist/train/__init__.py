"""Distributed fine-tuning of the LRM: Ray Train workers running DeepSpeed on streamed WebDataset shards."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lrm_dist.config import PipelineConfig
    from lrm_dist.train.trainer import TrainResult


def train(cfg: PipelineConfig) -> TrainResult:
    """Train the LRM as ``cfg.train`` says (see ``lrm_dist.train.trainer.train``)."""
    from lrm_dist.train.trainer import train as _train

    return _train(cfg)


def __getattr__(name: str):
    if name == "TrainResult":
        from lrm_dist.train.trainer import TrainResult

        return TrainResult
    raise AttributeError(name)


__all__ = ["train", "TrainResult"]
