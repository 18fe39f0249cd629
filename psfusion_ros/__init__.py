"""psfusion_ros: PSFusion infrared/visible fusion and segmentation for ROS 2 and offline tools.

Importing the package loads nothing heavy: the names below are imported on first use, and none of them
needs ROS (the node lives in :mod:`psfusion_ros.ros`).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_EXPORTS = {
    "ApproximateTimeSync": "psfusion_ros.pipeline.sync",
    "CheckpointError": "psfusion_ros.errors",
    "ConfigError": "psfusion_ros.errors",
    "FusionPipeline": "psfusion_ros.pipeline.fusion_pipeline",
    "FusionResult": "psfusion_ros.pipeline.fusion_pipeline",
    "PipelineConfig": "psfusion_ros.pipeline.config",
    "PSFusion": "psfusion_ros.model.psfusion",
    "PSFusionError": "psfusion_ros.errors",
    "PSFusionOutput": "psfusion_ros.model.psfusion",
    "build_pipeline": "psfusion_ros.pipeline.builder",
    "fusion_metrics": "psfusion_ros.metrics.fusion",
    "load_checkpoint": "psfusion_ros.model.checkpoint",
    "save_checkpoint": "psfusion_ros.model.checkpoint",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
