"""Eager PyTorch on the inference graph: the reference every other backend is checked against.

bf16/fp16 cast the weights and inputs, except the blocks the precision policy keeps in fp32: on the CPUs measured,
autocast to bf16 ran ~10x slower than fp32 while casting ran 2-3x faster; on CUDA both are fast and casting keeps
one code path. On CUDA, ``cuda_graphs`` replays the network as one captured graph (:mod:`.cuda_graphs`).
"""

from __future__ import annotations

import torch

from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.config import EngineConfig
from psfusion_ros.pipeline.engines.base import InferenceOutput, check_precision
from psfusion_ros.pipeline.engines.cuda_graphs import CudaGraphRunner, maybe_cuda_graphs


class EagerEngine:
    name = "eager"

    def __init__(self, model: PSFusion, device: torch.device, precision: str = "fp32",
                 cuda_graphs: bool = False) -> None:
        check_precision(precision, device)
        self.graph = InferenceGraph(model, precision).to(device).eval()
        self.device, self.precision, self.num_classes = device, precision, model.num_classes
        self.run = maybe_cuda_graphs(self.graph, device, cuda_graphs)

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        with torch.inference_mode():
            return InferenceOutput(*self.run(vi, ir))

    def close(self) -> None:
        if isinstance(self.run, CudaGraphRunner):
            self.run.close()


def create(config: EngineConfig, model: PSFusion, device: torch.device,
           network_size: tuple[int, int] | None) -> EagerEngine:
    return EagerEngine(model, device, config.precision, config.cuda_graphs)
