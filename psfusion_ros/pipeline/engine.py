"""Where and how the network runs: device choice and numeric precision (eager PyTorch)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from psfusion_ros.model.psfusion import PSFusionOutput

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` → CUDA when available, else CPU; asking for CUDA without one is an error, not a fallback."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but no CUDA GPU is available (use device auto or cpu)")
    if name.split(":")[0] not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; expected one of {DEVICES}")
    return torch.device(name)


def check_precision(precision: str, device: torch.device) -> None:
    """Reject combinations that would silently run slow or wrong."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU")


class EagerEngine:
    """Runs PSFusion in eager PyTorch, under autocast for bf16/fp16, without autograd."""

    name = "eager"

    def __init__(self, model: nn.Module, device: torch.device, precision: str = "fp32") -> None:
        check_precision(precision, device)
        self.model = model.to(device).eval()
        self.device = device
        self.precision = precision

    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        with torch.inference_mode():
            if dtype is None:
                yield
            else:
                with torch.autocast(self.device.type, dtype=dtype):
                    yield

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> PSFusionOutput:
        with self._numerics():
            return PSFusionOutput(*self.model(vi, ir))
