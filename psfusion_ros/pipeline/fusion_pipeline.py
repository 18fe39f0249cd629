"""The one ROS-free pipeline: visible + thermal frames in, fused image and class ids out.

Built only by :func:`~psfusion_ros.pipeline.builder.build_pipeline` from a
:class:`~psfusion_ros.pipeline.config.PipelineConfig`, so the node, ``psfusion-fuse``, the evaluation tools,
the benchmarks and the demo run the same stages and a number measured offline is a number the vehicle sees:

    thermal normalization → registration into the RGB grid → resize to the network size
    → engine → fused Y + visible Cb/Cr → RGB, argmax → class ids → resize back to the RGB size
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from psfusion_ros.errors import FrameError, PSFusionError
from psfusion_ros.pipeline.color import fused_rgb_uint8
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.engines.base import Engine
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.resize import floor_to_multiple, resize_image, resize_labels
from psfusion_ros.pipeline.thermal import ThermalNormalizer

STAGES = ("thermal", "register", "resize_in", "inference", "colour", "argmax", "resize_out")
#: A thermal input whose values span less than this (of [0, 1]) carries no information: reported as blank.
BLANK_THERMAL_SPAN = 1e-3


@dataclass
class FusionResult:
    """Outputs for one pair, in the visible frame's geometry."""

    fused: np.ndarray  # (H, W, 3) uint8 RGB
    class_ids: np.ndarray  # (H, W) uint8 semantic class per pixel
    network_size: tuple[int, int]
    timing_ms: dict[str, float] = field(default_factory=dict)
    thermal: np.ndarray | None = None  # the thermal input as the network saw it, in the visible geometry
    #: the thermal input was flat after normalization and registration (no data, all NaN, nothing overlaps)
    thermal_blank: bool = False


def _check_visible(vi: np.ndarray) -> None:
    if not isinstance(vi, np.ndarray) or vi.ndim != 3 or vi.shape[2] != 3 or vi.dtype != np.uint8:
        raise FrameError(f"visible frame must be (H, W, 3) uint8 RGB, got {getattr(vi, 'shape', '?')} "
                         f"{getattr(vi, 'dtype', type(vi).__name__)}")


def _check_thermal(ir: np.ndarray) -> None:
    if not isinstance(ir, np.ndarray) or ir.ndim != 2 or ir.dtype not in (np.uint8, np.uint16, np.float32,
                                                                           np.float64):
        raise FrameError(f"thermal frame must be (H, W) uint8/uint16/float, got {getattr(ir, 'shape', '?')} "
                         f"{getattr(ir, 'dtype', type(ir).__name__)}")


def _to_unit_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """Stack frames into one tensor in [0, 1]; uint8 is divided by 255 exactly like ``to_tensor``."""
    with warnings.catch_warnings():  # frames may be read-only views of message buffers; never written to
        warnings.simplefilter("ignore", UserWarning)
        batch = torch.from_numpy(images[0])[None] if len(images) == 1 else torch.from_numpy(np.stack(images))
    batch = batch.to(device)
    return batch.to(torch.float32).div_(255.0) if batch.dtype == torch.uint8 else batch


class FusionPipeline:
    """Normalize and register the thermal frame, run the engine, recombine colour, resize back.

    ``network_size=None`` follows the paper's test script: each pair is shrunk to the nearest lower multiple
    of 32 of its own size. ``resample="paper"`` reproduces the reference's PIL bicubic resampling and uint8
    truncation; ``"fast"`` uses OpenCV for live use.
    """

    def __init__(self, engine: Engine, config: PipelineConfig, registration: Registration,
                 thermal: ThermalNormalizer) -> None:
        self.engine = engine
        self.config = config
        self.network_size = config.network_size
        self.resample = config.resample
        self.registration = registration
        self.thermal = thermal
        #: why the configured engine is not the one running (engine_fallback), else None
        self.fallback: str | None = None
        #: frames go to the device as uint8/uint16 and every stage runs there (CUDA); else OpenCV/PIL on arrays
        self.tensor_path = self.device.type == "cuda" and config.resample == "fast"

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def num_classes(self) -> int:
        return self.engine.num_classes

    def size_for(self, height: int, width: int) -> tuple[int, int]:
        """Network input size used for a visible frame of this size."""
        return self.network_size or floor_to_multiple(height, width)

    def __call__(self, vi: np.ndarray, ir: np.ndarray) -> FusionResult:
        return self.run_batch([vi], [ir])[0]

    def warm_up(self) -> float:
        """Run the engine on blank inputs at the network size, then one generated pair through every stage, so the
        first real pair is not late: the CUDA context, kernel loading and cuDNN's algorithm choice (or oneDNN's on
        a CPU) happen on the first passes. On an H100 the first pairs took ~450 ms instead of 30 ms and a 10 Hz
        replay lost 6 of its first 10 pairs to it. Call it on the thread that runs inference (CUDA libraries keep
        per-thread handles). Leaves no state behind (thermal range, registration notes). Returns the seconds
        spent (0 with an automatic network size: there is no size to warm up)."""
        if self.network_size is None:
            return 0.0
        start = time.perf_counter()
        vi = torch.zeros(1, 3, *self.network_size, device=self.device)
        ir = torch.zeros(1, 1, *self.network_size, device=self.device)
        for _ in range(2 if self.device.type == "cuda" else 1):
            self.engine(vi, ir)
        h, w = self.network_size
        counts = (np.arange(h * w, dtype=np.uint32) % 4096 + 20000).astype(np.uint16).reshape(h, w)
        try:
            self(np.zeros((h, w, 3), np.uint8), counts)
        except PSFusionError:
            pass  # e.g. a calibration for another thermal size: the real frames will say so
        self.thermal.reset()
        self.registration.take_notes()
        return self._sync() - start

    def _prepare_thermal(self, ir: np.ndarray, size: tuple[int, int], timing: dict[str, float]) -> np.ndarray:
        _check_thermal(ir)
        thermal, registration = self.thermal, self.registration  # (may be swapped by a live parameter change)
        t0 = time.perf_counter()
        ir = thermal(ir)
        t1 = time.perf_counter()
        ir = registration.apply(ir, size)
        timing["thermal"] += (t1 - t0) * 1e3
        timing["register"] += (time.perf_counter() - t1) * 1e3
        return ir

    def run_batch(self, vis: Sequence[np.ndarray], irs: Sequence[np.ndarray]) -> list[FusionResult]:
        """Fuse pairs in one forward pass (all visible frames must map to one network size)."""
        if not vis or len(vis) != len(irs):
            raise FrameError("run_batch needs the same, non-zero number of visible and thermal frames")
        for vi in vis:
            _check_visible(vi)
        sizes = {self.size_for(*vi.shape[:2]) for vi in vis}
        if len(sizes) != 1:
            raise FrameError(f"a batch must share one network size, got {sorted(sizes)}")
        net_size = sizes.pop()
        if self.tensor_path:
            return self._run_tensors(vis, irs, net_size)
        timing = dict.fromkeys(STAGES, 0.0)
        irs = [self._prepare_thermal(ir, vi.shape[:2], timing) for vi, ir in zip(vis, irs)]

        t0 = time.perf_counter()
        vi_t = _to_unit_tensor([resize_image(v, net_size, self.resample) for v in vis], self.device)  # (B,H,W,3)
        ir_small = [resize_image(i, net_size, self.resample) for i in irs]
        ir_t = _to_unit_tensor(ir_small, self.device).unsqueeze(1)
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
                         thermal=ir, thermal_blank=_is_blank(small))
            for vi, f, c, ir, small in zip(vis, fused, class_ids, irs, ir_small)
        ]
        t5 = time.perf_counter()
        for name, seconds in zip(STAGES[2:], (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            timing[name] += seconds * 1e3
        for r in results:
            r.timing_ms = {k: v / len(results) for k, v in timing.items()}
        return results


    # -- the device path: one upload per frame, everything on the device, one copy of uint8 results back --------
    def _upload(self, frame: np.ndarray) -> torch.Tensor:
        with warnings.catch_warnings():  # read-only message buffers: copied by the upload, never written to
            warnings.simplefilter("ignore", UserWarning)
            tensor = torch.from_numpy(np.ascontiguousarray(frame))
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _run_tensors(self, vis: Sequence[np.ndarray], irs: Sequence[np.ndarray],
                     net_size: tuple[int, int]) -> list[FusionResult]:
        timing = dict.fromkeys(STAGES, 0.0)
        thermal, registration = self.thermal, self.registration
        vi_small, ir_small, ir_full, full_sizes = [], [], [], []
        for vi, ir in zip(vis, irs):
            _check_thermal(ir)
            t0 = self._sync()
            ir_t = thermal(self._upload(ir))
            ir_t = ir_t.float().div_(255.0) if ir_t.dtype == torch.uint8 else ir_t
            t1 = self._sync()
            ir_t = registration.apply(ir_t, vi.shape[:2])
            t2 = self._sync()
            vi_t = self._upload(vi).float().div_(255.0)
            vi_small.append(resize_image(vi_t, net_size, "fast"))
            ir_small.append(resize_image(ir_t, net_size, "fast"))
            ir_full.append(ir_t)
            full_sizes.append(vi.shape[:2])
            timing["thermal"] += (t1 - t0) * 1e3
            timing["register"] += (t2 - t1) * 1e3
            timing["resize_in"] += (self._sync() - t2) * 1e3
        t0 = self._sync()
        vi_b = torch.stack(vi_small)  # (B, h, w, 3)
        out = self.engine(vi_b.permute(0, 3, 1, 2).contiguous(), torch.stack(ir_small).unsqueeze(1))
        t1 = self._sync()
        fused = fused_rgb_uint8(out.fused[:, 0].float(), vi_b)  # (B, h, w, 3) uint8
        t2 = self._sync()
        class_ids = out.semantic.argmax(dim=1).to(torch.uint8)  # (B, h, w)
        t3 = self._sync()
        results = []
        for k, (h, w) in enumerate(full_sizes):
            big = resize_image(fused[k].float(), (h, w), "fast").round_().clamp_(0, 255).to(torch.uint8)
            ids = torch.nn.functional.interpolate(class_ids[k][None, None].float(), size=(h, w), mode="nearest")
            ir_255 = ir_full[k].mul(255.0).round_().clamp_(0, 255).to(torch.uint8)
            packed = torch.cat([big, ids[0, 0, :, :, None].to(torch.uint8), ir_255[:, :, None]], dim=-1).cpu().numpy()
            span = float(ir_small[k].max() - ir_small[k].min())
            results.append(FusionResult(packed[..., :3].copy(), packed[..., 3].copy(), net_size,
                                        thermal=packed[..., 4].copy(), thermal_blank=span < BLANK_THERMAL_SPAN))
        t4 = self._sync()
        for name, seconds in (("inference", t1 - t0), ("colour", t2 - t1), ("argmax", t3 - t2),
                              ("resize_out", t4 - t3)):
            timing[name] += seconds * 1e3
        for r in results:
            r.timing_ms = {k: v / len(results) for k, v in timing.items()}
        return results


def _is_blank(thermal: np.ndarray) -> bool:
    span = float(thermal.max()) - float(thermal.min())
    return span < (BLANK_THERMAL_SPAN * 255 if thermal.dtype == np.uint8 else BLANK_THERMAL_SPAN)
