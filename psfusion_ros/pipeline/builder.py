"""``build_pipeline``: the only place a :class:`FusionPipeline` is assembled (node, eval, bench, demo, fuse)."""

from __future__ import annotations

from pathlib import Path

import torch

from psfusion_ros.errors import ConfigError, EngineError
from psfusion_ros.model.checkpoint import load_checkpoint
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.config import EngineConfig, PipelineConfig
from psfusion_ros.pipeline.engines import create_engine
from psfusion_ros.pipeline.engines.base import resolve_device
from psfusion_ros.pipeline.fusion_pipeline import FusionPipeline
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.thermal import ThermalNormalizer

#: Seed of the untrained weights the demo and tests run when no checkpoint is given.
UNTRAINED_SEED = 0


def load_model(config: PipelineConfig, checkpoint: str | Path | None = None) -> PSFusion:
    """The checkpoint's network, or seeded untrained weights when allowed; never silently untrained."""
    path = checkpoint or config.checkpoint
    if path:
        return load_checkpoint(path, num_classes=None)  # the class count the weights were trained for
    if not config.allow_untrained:
        raise ConfigError("no checkpoint: give the PSFusion weights (best_model.pth), or allow untrained weights "
                          "for a demo (allow_untrained / --allow-untrained)")
    torch.manual_seed(UNTRAINED_SEED)
    return PSFusion()


def build_pipeline(config: PipelineConfig, checkpoint: str | Path | None = None, *,
                   model: PSFusion | None = None) -> FusionPipeline:
    """The pipeline ``config`` describes, with the weights of ``checkpoint`` (default: ``config.checkpoint``)
    or an already loaded ``model``. An exported engine that cannot run here is an :class:`EngineError`, or, with
    ``engine_fallback``, eager fp32 with ``pipeline.fallback`` saying why (the node reports it as an ERROR)."""
    if model is None:
        model = load_model(config, checkpoint)
    device = resolve_device(config.engine.device)
    fallback = None
    try:
        engine = create_engine(config.engine, model, device, config.network_size)
    except EngineError as exc:
        if not config.engine.engine_fallback:
            raise
        engine = create_engine(EngineConfig(device=config.engine.device), model, device, config.network_size)
        fallback = f"{exc} -- running eager fp32 instead (engine_fallback)"
    pipeline = FusionPipeline(engine, config, Registration.from_config(config.registration),
                              ThermalNormalizer(config.thermal))
    pipeline.fallback = fallback
    return pipeline
