"""Raw thermal frames (8/14/16-bit counts, float temperatures) → [0, 1] network input.

Radiometric cameras deliver counts or temperatures whose useful range is a sliver of the type's range
(dividing mono16 by 256 gives a near-black image). Percentile stretching with temporal smoothing keeps
contrast without the brightness flicker a per-frame min/max gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODES = ("none", "minmax", "percentile", "fixed")
#: Percentiles are estimated on every n-th pixel in each direction (1/16 of a frame): ~1 ms at 640x480.
_SUBSAMPLE = 4


@dataclass
class ThermalConfig:
    mode: str = "percentile"
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    #: Weight of the previous range in the exponential moving average (0 = no smoothing).
    smoothing: float = 0.8
    fixed_min: float = 0.0
    fixed_max: float = 1.0
    #: White-hot output from a black-hot camera.
    invert: bool = False
    #: 8-bit thermal is usually already contrast-managed by the camera: pass it through unless True.
    normalize_8bit: bool = False

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown thermal normalization {self.mode!r}; expected one of {MODES}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError("thermal percentiles must satisfy 0 <= low < high <= 100")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError("thermal smoothing must be in [0, 1)")
        if self.mode == "fixed" and not self.fixed_max > self.fixed_min:
            raise ValueError("thermal fixed_max must be greater than fixed_min")


class ThermalNormalizer:
    """Stateful normalizer: one per camera stream (the smoothed range carries over between frames)."""

    def __init__(self, config: ThermalConfig | None = None) -> None:
        self.config = config or ThermalConfig()
        self.config.validate()
        self._range: tuple[float, float] | None = None

    def reset(self) -> None:
        """Forget the smoothed range (after a bag loop or a camera restart)."""
        self._range = None

    @property
    def current_range(self) -> tuple[float, float] | None:
        return self._range

    def _measure(self, frame: np.ndarray) -> tuple[float, float] | None:
        cfg = self.config
        if cfg.mode == "fixed":
            return cfg.fixed_min, cfg.fixed_max
        sample = frame[::_SUBSAMPLE, ::_SUBSAMPLE] if frame.size > 4096 else frame
        if sample.dtype.kind == "f":
            sample = sample[np.isfinite(sample)]
            if sample.size == 0:
                return None
        if cfg.mode == "minmax":
            return float(sample.min()), float(sample.max())
        lo, hi = np.percentile(sample, (cfg.low_percentile, cfg.high_percentile))
        return float(lo), float(hi)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) uint8/uint16/float → float32 in [0, 1]; NaN/Inf pixels become 0."""
        if frame.ndim != 2:
            raise ValueError(f"thermal frame must be 2-D, got shape {frame.shape}")
        cfg = self.config
        if cfg.mode == "none" or (frame.dtype == np.uint8 and not cfg.normalize_8bit):
            scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(frame.dtype, 1.0)
            out = frame.astype(np.float32) * np.float32(1.0 / scale)
        else:
            measured = self._measure(frame)
            if measured is None:  # nothing finite in this frame: keep the last range
                measured = self._range or (0.0, 1.0)
            if self._range is not None and cfg.mode != "fixed":
                a = cfg.smoothing
                measured = (a * self._range[0] + (1 - a) * measured[0], a * self._range[1] + (1 - a) * measured[1])
            self._range = measured
            lo, hi = measured
            span = max(hi - lo, 1e-6)
            out = (frame.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / span)
        np.clip(out, 0.0, 1.0, out=out)  # NaN stays NaN here, ±Inf saturates
        if cfg.invert:
            np.subtract(1.0, out, out=out)
        if frame.dtype.kind == "f":
            out[~np.isfinite(frame)] = 0.0  # no data reads as cold, inverted or not
        return out
