"""The one ROS-free pipeline: visible + thermal frames in, fused image and class ids out.

The node, ``psfusion-fuse``, the evaluation tools and the demo all call :class:`FusionPipeline`, so a
number measured offline is a number the vehicle sees. Stages, each timed:

    thermal normalization → registration into the RGB grid → resize to the network size
    → PSFusion → fused Y + visible Cb/Cr → RGB, argmax → class ids → resize back to the RGB size
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from psfusion_ros.model.checkpoint import load_checkpoint
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.color import fused_rgb_uint8
from psfusion_ros.pipeline.engine import EagerEngine, resolve_device
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.resize import (
    RESAMPLERS,
    check_network_size,
    floor_to_multiple,
    resize_image,
    resize_labels,
)
from psfusion_ros.pipeline.thermal import ThermalNormalizer

STAGES = ("thermal", "register", "resize_in", "inference", "colour", "argmax", "resize_out")


@dataclass
class FusionResult:
    """Outputs for one pair, in the visible frame's geometry."""

    fused: np.ndarray  # (H, W, 3) uint8 RGB
    class_ids: np.ndarray  # (H, W) uint8 semantic class per pixel
    network_size: tuple[int, int]
    timing_ms: dict[str, float] = field(default_factory=dict)
    thermal: np.ndarray | None = None  # the thermal input as the network saw it, in the visible geometry


def _check_visible(vi: np.ndarray) -> None:
    if vi.ndim != 3 or vi.shape[2] != 3 or vi.dtype != np.uint8:
        raise ValueError(f"visible frame must be (H, W, 3) uint8 RGB, got {vi.shape} {vi.dtype}")


def _check_thermal(ir: np.ndarray, normalizing: bool) -> None:
    allowed = (np.uint8, np.uint16, np.float32, np.float64) if normalizing else (np.uint8, np.float32)
    if ir.ndim != 2 or ir.dtype not in allowed:
        kinds = "uint8/uint16/float" if normalizing else "uint8 or float32 in [0, 1]"
        raise ValueError(f"thermal frame must be (H, W) {kinds}, got {ir.shape} {ir.dtype}")


def _to_unit_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Stack frames into one tensor in [0, 1]; uint8 is divided by 255 exactly like ``to_tensor``."""
    with warnings.catch_warnings():  # frames may be read-only views of message buffers; never written to
        warnings.simplefilter("ignore", UserWarning)
        batch = torch.from_numpy(images[0])[None] if len(images) == 1 else torch.from_numpy(np.stack(images))
    batch = batch.to(device)
    return batch.to(torch.float32).div_(255.0) if batch.dtype == torch.uint8 else batch


class FusionPipeline:
    """Normalize and register the thermal frame, run PSFusion, recombine colour, resize back.

    ``network_size=None`` follows the paper's test script: each pair is shrunk to the nearest lower multiple
    of 32 of its own size. ``resample="paper"`` reproduces the reference's PIL bicubic resampling and uint8
    truncation; ``"fast"`` uses OpenCV for live use. Without ``thermal`` the thermal frame must already be
    uint8 or float32 in [0, 1]; without ``registration`` it must have the visible frame's size.
    """

    def __init__(
        self,
        model: PSFusion,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        network_size: tuple[int, int] | None = None,
        resample: str = "paper",
        registration: Registration | None = None,
        thermal: ThermalNormalizer | None = None,
    ) -> None:
        if network_size is not None:
            check_network_size(network_size)
        if resample not in RESAMPLERS:
            raise ValueError(f"unknown resampler {resample!r}; expected one of {RESAMPLERS}")
        self.device = resolve_device(device)
        self.engine = EagerEngine(model, self.device, precision)
        self.network_size = network_size
        self.resample = resample
        self.registration = registration
        self.thermal = thermal

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path | None, seed: int = 0, **kwargs: object) -> FusionPipeline:
        """From a checkpoint file, or seeded untrained weights when ``checkpoint`` is None (demo, tests)."""
        if checkpoint is None:
            torch.manual_seed(seed)
            model = PSFusion()
        else:
            model = load_checkpoint(checkpoint)
        return cls(model, **kwargs)  # type: ignore[arg-type]

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """Network input size used for a visible frame of this size."""
        return self.network_size or floor_to_multiple(height, width)

    def __call__(self, vi: np.ndarray, ir: np.ndarray) -> FusionResult:
        return self.run_batch([vi], [ir])[0]

    def _prepare_thermal(self, ir: np.ndarray, size: tuple[int, int], timing: dict[str, float]) -> np.ndarray:
        _check_thermal(ir, self.thermal is not None)
        t0 = time.perf_counter()
        if self.thermal is not None:
            ir = self.thermal(ir)
        t1 = time.perf_counter()
        if self.registration is not None:
            ir = self.registration.apply(ir, size)
        elif ir.shape != size:
            raise ValueError(
                f"thermal {ir.shape[0]}x{ir.shape[1]} and visible {size[0]}x{size[1]} differ in size; "
                "register the thermal frame into the visible geometry first"
            )
        timing["thermal"] += (t1 - t0) * 1e3
        timing["register"] += (time.perf_counter() - t1) * 1e3
        return ir

    def run_batch(self, vis: Sequence[np.ndarray], irs: Sequence[np.ndarray]) -> list[FusionResult]:
        """Fuse pairs in one forward pass (all visible frames must map to one network size)."""
        if not vis or len(vis) != len(irs):
            raise ValueError("run_batch needs the same, non-zero number of visible and thermal frames")
        for vi in vis:
            _check_visible(vi)
        sizes = {self.size_for(*vi.shape[:2]) for vi in vis}
        if len(sizes) != 1:
            raise ValueError(f"a batch must share one network size, got {sorted(sizes)}")
        net_size = sizes.pop()
        timing = dict.fromkeys(STAGES, 0.0)
        irs = [self._prepare_thermal(ir, vi.shape[:2], timing) for vi, ir in zip(vis, irs)]

        t0 = time.perf_counter()
        vi_t = _to_unit_tensor([resize_image(v, net_size, self.resample) for v in vis], self.device)  # (B,H,W,3)
        ir_t = _to_unit_tensor([resize_image(i, net_size, self.resample) for i in irs], self.device).unsqueeze(1)
        t1 = time.perf_counter()
        out = self.engine(vi_t.permute(0, 3, 1, 2), ir_t)
        t2 = time.perf_counter()
        fused = fused_rgb_uint8(out.fused[:, 0].float(), vi_t).cpu().numpy()
        t3 = time.perf_counter()
        # channels-last makes the per-pixel argmax over classes ~5x faster on CPU
        logits = out.semantic.contiguous(memory_format=torch.channels_last)
        class_ids = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
        t4 = time.perf_counter()
        results = [
            FusionResult(resize_image(f, vi.shape[:2], self.resample), resize_labels(c, vi.shape[:2]), net_size,
                         thermal=ir)
            for vi, f, c, ir in zip(vis, fused, class_ids, irs)
        ]
        t5 = time.perf_counter()
        for name, seconds in zip(STAGES[2:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            timing[name] += seconds * 1e3
        for r in results:
            r.timing_ms = {k: v / len(results) for k, v in timing.items()}
        return results
