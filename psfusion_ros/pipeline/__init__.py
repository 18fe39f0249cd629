"""ROS-free processing: configuration and builder, synchronization, registration, thermal normalization,
resizing, colour, engines, health. Names below are imported on first use (torch is loaded only then)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ApproximateTimeSync": "psfusion_ros.pipeline.sync",
    "FusionPipeline": "psfusion_ros.pipeline.fusion_pipeline",
    "FusionResult": "psfusion_ros.pipeline.fusion_pipeline",
    "PipelineConfig": "psfusion_ros.pipeline.config",
    "NodeConfig": "psfusion_ros.pipeline.config",
    "SyncedPair": "psfusion_ros.pipeline.pair",
    "StampedFrame": "psfusion_ros.pipeline.pair",
    "build_pipeline": "psfusion_ros.pipeline.builder",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
