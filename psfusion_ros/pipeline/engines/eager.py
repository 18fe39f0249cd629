"""Eager PyTorch: the reference engine every other backend is checked against."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from psfusion_ros.pipeline.config import EngineConfig
from psfusion_ros.pipeline.engines.base import InferenceOutput, check_precision

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class EagerEngine:
    """Runs PSFusion in eager PyTorch, under autocast for bf16/fp16, without autograd."""

    name = "eager"

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32") -> None:
        check_precision(precision, device)
        self.model = model.to(device).eval()
        self.device = device
        self.precision = precision
        self.num_classes = int(model.num_classes)

    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        with torch.inference_mode():
            if dtype is None:
                yield
            else:
                with torch.autocast(self.device.type, dtype=dtype):
                    yield

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        with self._numerics():
            out = self.model(vi, ir)
            return InferenceOutput(out.fused, out.semantic)


def create(config: EngineConfig, model: nn.Module, device: torch.device,
           network_size: tuple[int, int] | None) -> EagerEngine:
    return EagerEngine(model, device, config.precision)
