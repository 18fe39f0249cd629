"""Image-fusion metrics: EN, SD, SF, AG, MI, MSE, CC, PSNR, SCD, VIF, Qabf, SSIM, under named profiles.

Each profile reproduces one published implementation number for number, so figures compare with the papers
that used it: ``cddfuse`` (MMIF-CDDFuse's Evaluator, the default), ``tang2022`` and ``tang2023`` (the two versions
of Linfeng-Tang/Image-Fusion's MATLAB scripts). The README says which to use for which kind of table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import psfusion_ros.metrics.cddfuse as cddfuse
import psfusion_ros.metrics.tang2022 as tang2022
import psfusion_ros.metrics.tang2023 as tang2023
from psfusion_ros.errors import ConfigError, FrameError

#: Smallest side for which VIF's 17/9/5/3-tap 'valid' filters with 2x decimation leave pixels at every scale.
MIN_SIZE = 47
METRIC_NAMES = ("EN", "SD", "SF", "AG", "MI", "MSE", "CC", "PSNR", "SCD", "VIF", "Qabf", "SSIM")


@dataclass(frozen=True)
class Profile:
    compute: Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]
    source: str


PROFILES: dict[str, Profile] = {
    "cddfuse": Profile(cddfuse.metrics, cddfuse.SOURCE),
    "tang2022": Profile(tang2022.metrics, tang2022.SOURCE),
    "tang2023": Profile(tang2023.metrics, tang2023.SOURCE),
}


def _profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"unknown metrics profile {name!r}; profiles: {', '.join(PROFILES)}")
    return PROFILES[name]


def profile_source(name: str) -> str:
    """Which implementation a profile reproduces (repository, file, version), for reports."""
    return _profile(name).source


def fusion_metrics(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray, profile: str = "cddfuse") -> dict[str, float]:
    """All twelve metrics for one fused image against its infrared and visible sources.

    Inputs are 2-D arrays in 0–255 of equal shape (grey; convert colour images to luma first). They are
    taken as float32, as the reference implementations read images.
    """
    compute = _profile(profile).compute
    arrays = [np.asarray(x, dtype=np.float32) for x in (fused, ir, vi)]
    if any(x.ndim != 2 for x in arrays) or len({x.shape for x in arrays}) != 1:
        raise FrameError(f"fusion_metrics needs three 2-D images of one shape, got {[x.shape for x in arrays]}")
    if min(arrays[0].shape) < MIN_SIZE:
        raise FrameError(f"images must be at least {MIN_SIZE}x{MIN_SIZE} pixels (VIF's four scales)")
    if not all(np.isfinite(x).all() for x in arrays):
        raise FrameError("images contain NaN or Inf")
    with np.errstate(divide="ignore", invalid="ignore"):  # degenerate inputs give inf/NaN, as the references do
        return compute(*arrays)
