"""Which model ``lrm-dist infer``/``serve`` and the Serve application builder run, resolved one way for all."""

from __future__ import annotations

from lrm_dist.config import PipelineConfig


def load_serving_config(config: str | None, overrides: list[str], model: str | None = None) -> PipelineConfig:
    """The config (none: the demo) with its model: ``model``, else ``model.pretrained``, else the workdir's trained one.

    Raises ``UserError`` (one line saying how to get a model) when none of them holds a model.
    """
    from lrm_dist.config import DEFAULT_CONFIG, load_config
    from lrm_dist.errors import UserError

    if model:
        overrides = [*overrides, f"model.pretrained={model}"]
    cfg = load_config(config or DEFAULT_CONFIG, overrides)
    if cfg.model.pretrained:
        return cfg
    from lrm_dist.storage import configure_from, exists, join

    configure_from(cfg)
    trained = cfg.layout().model_dir  # a local folder or an object-store URL
    if not exists(join(trained, "config.json")):
        raise UserError(f"no model to run: {trained} holds no trained model; train one (lrm-dist run "
                        f"{config or 'configs/default.yaml'}) or pass --model FOLDER or a hub id "
                        "(e.g. zxhezexin/openlrm-obj-small-1.1)")
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"pretrained": trained})})
