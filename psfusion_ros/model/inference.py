"""The graph every deployment backend runs: PSFusion's inference outputs, at one numeric precision.

``InferenceGraph(model, precision)`` is what eager runs, what ``torch.compile``/AOTInductor and Torch-TensorRT
compile and what ONNX exports: ``forward(vi, ir)`` takes float32 (B,3,H,W) and (B,1,H,W) in [0, 1] and returns
float32 ``(fused (B,1,H,W), semantic logits (B,C,H,W))``. Lower precisions cast the weights and the inputs (on this
CPU, autocast to bf16 is ~10x slower than fp32 while casting is ~3x faster); the fused-image head stays fp32.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from psfusion_ros.model.psfusion import PSFusion

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: Submodules kept in fp32 at lower precisions: the fused luminance is what users look at (40.0 dB vs 39.9 dB).
FP32_HEADS = ("pred_fusion",)


class InferenceGraph(nn.Module):
    def __init__(self, model: PSFusion, precision: str = "fp32") -> None:
        super().__init__()
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.num_classes = model.num_classes
        net = copy.deepcopy(model) if self.dtype != torch.float32 else model
        net = net.eval().to(self.dtype)
        for name in FP32_HEADS:
            getattr(net, name).float()
        self.net = net

    def forward(self, vi: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fused, semantic = self.net.infer(vi.to(self.dtype), ir.to(self.dtype))
        return fused.float(), semantic.float()
