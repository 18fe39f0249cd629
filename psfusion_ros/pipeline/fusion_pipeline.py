"""The one ROS-free pipeline: visible + thermal frames in, fused image and class ids out.

The node, ``psfusion-fuse``, the evaluation tools and the demo all call :class:`FusionPipeline`, so a
number measured offline is a number the vehicle sees.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from psfusion_ros.model.checkpoint import load_checkpoint
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.color import fuse_luminance, to_uint8
from psfusion_ros.pipeline.engine import EagerEngine, resolve_device
from psfusion_ros.pipeline.resize import (
    RESAMPLERS,
    check_network_size,
    floor_to_multiple,
    resize_image,
    resize_labels,
)


@dataclass
class FusionResult:
    """Outputs for one pair, in the visible frame's geometry."""

    fused: np.ndarray  # (H, W, 3) uint8 RGB
    class_ids: np.ndarray  # (H, W) uint8 semantic class per pixel
    network_size: tuple[int, int]
    timing_ms: dict[str, float] = field(default_factory=dict)


def _check_pair(vi: np.ndarray, ir: np.ndarray) -> None:
    if vi.ndim != 3 or vi.shape[2] != 3 or vi.dtype != np.uint8:
        raise ValueError(f"visible frame must be (H, W, 3) uint8 RGB, got {vi.shape} {vi.dtype}")
    if ir.ndim != 2 or ir.dtype not in (np.uint8, np.float32):
        raise ValueError(f"thermal frame must be (H, W) uint8 or float32 in [0, 1], got {ir.shape} {ir.dtype}")
    if vi.shape[:2] != ir.shape:
        raise ValueError(
            f"thermal {ir.shape[0]}x{ir.shape[1]} and visible {vi.shape[0]}x{vi.shape[1]} differ in size; "
            "register the thermal frame into the visible geometry first"
        )


def _to_unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) / 255.0 if image.dtype == np.uint8 else image


class FusionPipeline:
    """Resize to the network size, run PSFusion, recombine colour, resize back.

    ``network_size=None`` follows the paper's test script: each pair is shrunk to the nearest lower multiple
    of 32 of its own size. ``resample="paper"`` reproduces the reference's PIL bicubic resampling and
    uint8 truncation; ``"fast"`` uses OpenCV for live use.
    """

    def __init__(
        self,
        model: PSFusion,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        network_size: tuple[int, int] | None = None,
        resample: str = "paper",
    ) -> None:
        if network_size is not None:
            check_network_size(network_size)
        self.device = resolve_device(device)
        self.engine = EagerEngine(model, self.device, precision)
        self.network_size = network_size
        self.resample = resample
        if resample not in RESAMPLERS:
            raise ValueError(f"unknown resampler {resample!r}; expected one of {RESAMPLERS}")

    @classmethod
    def from_checkpoint(
        cls, checkpoint: str | Path | None, seed: int = 0, **kwargs: object
    ) -> FusionPipeline:
        """From a checkpoint file, or seeded untrained weights when ``checkpoint`` is None (demo, tests)."""
        if checkpoint is None:
            torch.manual_seed(seed)
            model = PSFusion()
        else:
            model = load_checkpoint(checkpoint)
        return cls(model, **kwargs)  # type: ignore[arg-type]

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """Network input size used for a frame of this size."""
        return self.network_size or floor_to_multiple(height, width)

    def __call__(self, vi: np.ndarray, ir: np.ndarray) -> FusionResult:
        return self.run_batch([vi], [ir])[0]

    def run_batch(self, vis: Sequence[np.ndarray], irs: Sequence[np.ndarray]) -> list[FusionResult]:
        """Fuse pairs of equal size in one forward pass (all pairs must share a network size)."""
        if not vis or len(vis) != len(irs):
            raise ValueError("run_batch needs the same, non-zero number of visible and thermal frames")
        for vi, ir in zip(vis, irs):
            _check_pair(vi, ir)
        sizes = {self.size_for(*vi.shape[:2]) for vi in vis}
        if len(sizes) != 1:
            raise ValueError(f"a batch must share one network size, got {sorted(sizes)}")
        net_size = sizes.pop()

        t0 = time.perf_counter()
        vi_net = np.stack([_to_unit(resize_image(v, net_size, self.resample)) for v in vis])
        ir_net = np.stack([_to_unit(resize_image(i, net_size, self.resample)) for i in irs])
        vi_t = torch.from_numpy(vi_net).permute(0, 3, 1, 2).to(self.device)
        ir_t = torch.from_numpy(ir_net).unsqueeze(1).to(self.device)
        t1 = time.perf_counter()

        out = self.engine(vi_t, ir_t)
        fused = to_uint8(fuse_luminance(out.fused.float(), vi_t)).permute(0, 2, 3, 1).cpu().numpy()
        class_ids = out.semantic.argmax(dim=1).to(torch.uint8).cpu().numpy()
        t2 = time.perf_counter()

        results = []
        for vi, f, c in zip(vis, fused, class_ids):
            size = vi.shape[:2]
            results.append(
                FusionResult(resize_image(f, size, self.resample), resize_labels(c, size), net_size)
            )
        t3 = time.perf_counter()
        timing = {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        for r in results:
            r.timing_ms = {k: v / len(results) for k, v in timing.items()}
        return results
