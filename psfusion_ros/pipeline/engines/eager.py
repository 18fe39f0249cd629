"""Eager PyTorch on the inference graph: the reference every other backend is checked against.

bf16/fp16 cast the weights and inputs (the fused-image head stays fp32): on the CPUs measured, autocast to bf16 ran
~10x slower than fp32 while casting ran 2-3x faster; on CUDA both are fast and casting keeps one code path.
"""

from __future__ import annotations

import torch

from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.config import EngineConfig
from psfusion_ros.pipeline.engines.base import InferenceOutput, check_precision


class EagerEngine:
    name = "eager"

    def __init__(self, model: PSFusion, device: torch.device, precision: str = "fp32") -> None:
        check_precision(precision, device)
        self.graph = InferenceGraph(model, precision).to(device).eval()
        self.device, self.precision, self.num_classes = device, precision, model.num_classes

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        with torch.inference_mode():
            return InferenceOutput(*self.graph(vi, ir))


def create(config: EngineConfig, model: PSFusion, device: torch.device,
           network_size: tuple[int, int] | None) -> EagerEngine:
    return EagerEngine(model, device, config.precision)
