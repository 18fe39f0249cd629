"""What every engine shares: device choice, precision rules, and the call interface the pipeline uses."""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

from psfusion_ros.errors import ConfigError
from psfusion_ros.pipeline.parameters import DEVICES, PRECISIONS


class InferenceOutput(NamedTuple):
    """What the pipeline needs from the network: fused luminance (B,1,H,W) and semantic logits (B,C,H,W)."""

    fused: torch.Tensor
    semantic: torch.Tensor


class Engine(Protocol):
    """``engine(vi, ir)`` with ``vi`` (B,3,H,W) and ``ir`` (B,1,H,W) float32 in [0, 1] on ``engine.device``."""

    name: str
    device: torch.device
    precision: str
    num_classes: int

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput: ...


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; asking for CUDA without one is an error, not a fallback."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; expected one of {DEVICES}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available (use device auto or cpu)")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """Reject combinations that would silently run slow or wrong."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")


def agreement(reference: InferenceOutput, other: InferenceOutput) -> dict[str, float]:
    """How close ``other`` is to ``reference`` (eager fp32): PSNR of the fused image (dB, [0, 1] range, capped at
    200) and the fraction of pixels whose argmax class agrees."""
    diff = (other.fused.float().cpu() - reference.fused.float().cpu()).clamp(-1, 1)
    mse = float((diff * diff).mean())
    psnr = 200.0 if mse <= 1e-20 else min(200.0, 10 * float(torch.log10(torch.tensor(1.0 / mse))))
    same = other.semantic.float().cpu().argmax(1) == reference.semantic.float().cpu().argmax(1)
    return {"fused_psnr_db": round(psnr, 2), "mask_agreement": round(float(same.float().mean()), 5)}
