"""One registration check: refine the homography in use locally and measure how far that moves the thermal frame.

Shared by the node's monitor (through a worker process), ``psfusion-eval`` and the worker itself; numpy and
OpenCV only (no torch, no ROS).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from psfusion_ros.pipeline.auto_registration import CONFIDENT, displacement_px, estimate_registration

if TYPE_CHECKING:  # registration.py imports torch; the worker process must not
    from psfusion_ros.pipeline.registration import Registration

#: Long side (px) of the frames a check works on (0.35 s of one core per check with the quadrant step, 0.24-0.28 s
#: before it). Checks from the estimator's own result on the 15 recorded shared pairs, and from it moved 8 px: at
#: 256 px 1 of 15 came back within 2 px, at 384 10 of 15 (512: 12, 0.38 s; 640: 13, 0.74 s), 11 with the quadrant
#: step; no confident residual over 5 px from the right calibration (README: Calibrating a rig).
CHECK_SIDE = 384


@dataclass(frozen=True)
class Check:
    """One check of the registration in use."""

    time: float
    residual_px: float
    confidence: float
    refined: np.ndarray  # thermal → RGB at the frames' sizes
    current: np.ndarray
    thermal_size: tuple[int, int]
    rgb_size: tuple[int, int]
    seconds: float
    reason: str = ""  # why the check is not confident

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT


def check_registration(registration: Registration, thermal: np.ndarray, rgb: np.ndarray) -> Check | None:
    """Refine the homography ``registration`` applies to this pair locally and measure how far that moves the
    thermal footprint's corners (None in camera_info mode: no homography to check)."""
    current = registration.homography_for(tuple(rgb.shape[:2]), tuple(thermal.shape[:2]))
    return None if current is None else measure(current, thermal, rgb)


def measure(current: np.ndarray, thermal: np.ndarray, rgb: np.ndarray) -> Check:
    """The check itself (also what the worker process runs)."""
    thermal_size, rgb_size = tuple(thermal.shape[:2]), tuple(rgb.shape[:2])
    start = time.perf_counter()
    estimate = estimate_registration(thermal, rgb, initial=current, working_side=CHECK_SIDE)
    return Check(time.monotonic(), displacement_px(current, estimate.homography, thermal_size, rgb_size),
                 estimate.confidence, estimate.homography, current, thermal_size, rgb_size,
                 time.perf_counter() - start, estimate.reason)
