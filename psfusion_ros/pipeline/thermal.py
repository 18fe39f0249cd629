"""Raw thermal frames (8/14/16-bit counts, float temperatures) → [0, 1] network input.

Radiometric cameras deliver counts or temperatures whose useful range is a sliver of the type's range
(dividing mono16 by 256 gives a near-black image). Percentile stretching with temporal smoothing keeps
contrast without the brightness flicker a per-frame min/max gives.
"""

from __future__ import annotations

import numpy as np
import torch

from psfusion_ros.errors import FrameError
from psfusion_ros.pipeline.config import ThermalConfig

#: Percentiles are estimated on every n-th pixel in each direction (1/16 of a frame): ~1 ms at 640x480.
_SUBSAMPLE = 4


class ThermalNormalizer:
    """Stateful normalizer: one per camera stream (the smoothed range carries over between frames)."""

    def __init__(self, config: ThermalConfig | None = None) -> None:
        self.config = config or ThermalConfig()  # validated when it was built
        self._range: tuple[float, float] | None = None

    def reset(self) -> None:
        """Forget the smoothed range (after a bag loop or a camera restart)."""
        self._range = None

    @property
    def current_range(self) -> tuple[float, float] | None:
        return self._range

    def _measure(self, frame: np.ndarray | torch.Tensor) -> tuple[float, float] | None:
        cfg = self.config
        if cfg.mode == "fixed":
            return cfg.fixed_min, cfg.fixed_max
        sample = frame[::_SUBSAMPLE, ::_SUBSAMPLE] if _numel(frame) > 4096 else frame
        if isinstance(sample, torch.Tensor):
            sample = _as_float32(sample)  # torch has few integer reductions (none for uint16)
        if _is_float(sample):
            sample = sample[_isfinite(sample)]
            if _numel(sample) == 0:
                return None
        if cfg.mode == "minmax":
            return float(sample.min()), float(sample.max())
        if isinstance(sample, torch.Tensor):
            q = torch.tensor([cfg.low_percentile / 100, cfg.high_percentile / 100], device=sample.device)
            lo, hi = torch.quantile(sample.reshape(-1), q).tolist()
        else:
            lo, hi = np.percentile(sample, (cfg.low_percentile, cfg.high_percentile))
        return float(lo), float(hi)

    def __call__(self, frame: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """(H, W) uint8/uint16/float → float32 in [0, 1]; NaN/Inf pixels become 0. numpy or torch, CPU or GPU.

        8-bit thermal that needs no stretching stays uint8 (inverted exactly if asked), so image-folder
        datasets take exactly the reference's path (PIL resizes 8-bit and float images differently)."""
        if frame.ndim != 2:
            raise FrameError(f"thermal frame must be 2-D, got shape {tuple(frame.shape)}")
        cfg = self.config
        if _is_uint8(frame) and (cfg.mode == "none" or not cfg.normalize_8bit):
            return 255 - frame if cfg.invert else frame
        if cfg.mode == "none" or (_is_uint8(frame) and not cfg.normalize_8bit):
            lo, span = 0.0, 255.0 if _is_uint8(frame) else 65535.0 if _is_uint16(frame) else 1.0
        else:
            measured = self._measure(frame)
            if measured is None:  # nothing finite in this frame: keep the last range
                measured = self._range or (0.0, 1.0)
            if self._range is not None and cfg.mode != "fixed":
                a = cfg.smoothing
                measured = (a * self._range[0] + (1 - a) * measured[0], a * self._range[1] + (1 - a) * measured[1])
            self._range = measured
            lo, span = measured[0], max(measured[1] - measured[0], 1e-6)
        out = _as_float32(frame)
        out -= lo
        out *= 1.0 / span
        _clip01(out)  # NaN stays NaN here, ±Inf saturates
        if cfg.invert:
            out *= -1.0
            out += 1.0
        if _is_float(frame):
            out[~_isfinite(frame)] = 0.0  # no data reads as cold, inverted or not
        return out


# numpy / torch without a dependency on either's array API
def _is_float(x: np.ndarray | torch.Tensor) -> bool:
    return x.is_floating_point() if isinstance(x, torch.Tensor) else x.dtype.kind == "f"


def _is_uint8(x: np.ndarray | torch.Tensor) -> bool:
    return x.dtype in (np.uint8, torch.uint8)


def _is_uint16(x: np.ndarray | torch.Tensor) -> bool:
    return x.dtype in (np.uint16, torch.uint16)


def _numel(x: np.ndarray | torch.Tensor) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else x.size


def _isfinite(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    return torch.isfinite(x) if isinstance(x, torch.Tensor) else np.isfinite(x)


def _as_float32(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """A float32 copy (never a view: the result is modified in place)."""
    if isinstance(x, torch.Tensor):
        return (x.to(torch.int32) if x.dtype == torch.uint16 else x).to(torch.float32, copy=True)
    return x.astype(np.float32)


def _clip01(x: np.ndarray | torch.Tensor) -> None:
    if isinstance(x, torch.Tensor):
        x.clamp_(0.0, 1.0)
    else:
        np.clip(x, 0.0, 1.0, out=x)
