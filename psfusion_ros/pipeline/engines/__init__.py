"""Inference engines behind one interface (:class:`~psfusion_ros.pipeline.engines.base.Engine`), chosen by name.

Each backend lives in its own module, imported only when it is asked for (TensorRT needs CUDA to import).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from psfusion_ros.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from psfusion_ros.model.psfusion import PSFusion
    from psfusion_ros.pipeline.config import EngineConfig
    from psfusion_ros.pipeline.engines.base import Engine

#: backend name → module defining ``create(config, model, device, network_size)``
ENGINES: dict[str, str] = {
    "eager": "psfusion_ros.pipeline.engines.eager",
    "compile": "psfusion_ros.pipeline.engines.compiled",
    "tensorrt": "psfusion_ros.pipeline.engines.tensorrt",
}


def create_engine(config: EngineConfig, model: PSFusion, device: torch.device,
                  network_size: tuple[int, int] | None) -> Engine:
    """The engine ``config.backend`` names, ready to run on ``device``."""
    module = ENGINES.get(config.backend)
    if module is None:
        raise ConfigError(f"backend {config.backend!r} is not available here; expected one of {tuple(ENGINES)}")
    return importlib.import_module(module).create(config, model, device, network_size)
