"""The graph every deployment backend runs: PSFusion's inference outputs, under one precision policy.

``InferenceGraph(model, precision)`` is what eager runs, what ``torch.compile``/AOTInductor and Torch-TensorRT
compile and what ONNX exports: ``forward(vi, ir)`` takes float32 (B,3,H,W) and (B,1,H,W) in [0, 1] and returns
float32 ``(fused (B,1,H,W), semantic logits (B,C,H,W))``. Lower precisions cast the weights (on this CPU, autocast
to bf16 is ~10x slower than fp32 while casting is ~3x faster) except the blocks the policy keeps in fp32
(:mod:`psfusion_ros.model.precision`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from psfusion_ros.model.precision import POLICIES, PrecisionPolicy, apply_mixed_precision
from psfusion_ros.model.psfusion import PSFusion


class InferenceGraph(nn.Module):
    """``fp32_blocks`` overrides the policy's fp32 set (``psfusion-bench precision`` uses it to measure)."""

    def __init__(self, model: PSFusion, precision: str = "fp32", fp32_blocks: Iterable[str] | None = None) -> None:
        super().__init__()
        base = POLICIES[precision]
        self.policy = PrecisionPolicy(precision, base.dtype,
                                      base.fp32_blocks if fp32_blocks is None else tuple(fp32_blocks))
        self.precision = precision
        self.dtype = base.dtype
        self.num_classes = model.num_classes
        if self.dtype == torch.float32:
            self.net = model.eval()
        else:
            self.net = apply_mixed_precision(copy.deepcopy(model).eval(), self.dtype, self.policy.fp32_blocks)

    def forward(self, vi: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused, semantic = self.net.infer(vi, ir)  # each block casts its inputs to its own dtype
        return fused.float(), semantic.float()
