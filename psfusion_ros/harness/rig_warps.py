"""Seeded "never-calibrated rig" cases made from aligned infrared/visible pairs, with exact ground truth.

A case takes an aligned pair (thermal and visible on one pixel grid), keeps the visible image as the RGB
camera, and renders the thermal camera as a rig nobody calibrated would deliver it: a lower-resolution canvas
(``canvas_scale`` of the RGB size), a random homography (relative scale, roll, shift, mild perspective), AGC
gain/offset, gamma and sensor noise. ``homography`` maps canvas pixels to RGB pixels, i.e. it is the truth for
``estimate_registration(case.thermal, case.rgb)``.

Two families (``psfusion-bench registration``):

* ``control``: the thermal image is synthesized from the visible image itself (inverted, gamma, gain/offset,
  blur, noise), so the truth is exact;
* ``real``: the recorded infrared image is warped. Public pairs are aligned only to a few pixels, so the bench
  scores these by consistency (the estimate on the warped pair against the estimate on the recorded pair
  composed with the warp) and reports the plain error against the warp beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from psfusion_ros.pipeline.auto_registration import displacement_px
from psfusion_ros.pipeline.registration_search import similarity

#: The range a never-calibrated rig spans (README: Calibrating a rig); relative scale 1 = the thermal frame's
#: field of view fills the RGB frame.
SCALE_RANGE = (0.6, 1.5)
ROTATION_DEG = 8.0
SHIFT_FRACTION = 0.15
#: Corner jitter of the perspective part, as a fraction of the RGB frame's diagonal.
PERSPECTIVE_FRACTION = 0.02
CANVAS_SCALE = 0.75


@dataclass(frozen=True)
class RigWarp:
    """The parameters one case was drawn with (reported beside its error)."""

    scale: float
    rotation_deg: float
    shift: tuple[float, float]  # fraction of the RGB width, height
    perspective_px: float
    gain: float
    offset: float
    gamma: float
    noise: float


@dataclass
class RigCase:
    name: str
    family: str  # "control" or "real"
    thermal: np.ndarray  # (h, w) uint8, the uncalibrated thermal camera's frame
    rgb: np.ndarray  # (H, W, 3) uint8
    homography: np.ndarray  # (3, 3) thermal canvas pixel -> RGB pixel (the truth)
    warp: RigWarp
    source_thermal: np.ndarray | None = field(default=None, repr=False)  # real family: the recorded IR, aligned


def luminance(rgb: np.ndarray) -> np.ndarray:
    """float32 luma of an RGB (or already grey) uint8 image."""
    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def random_rig_homography(rng: np.random.Generator, thermal_size: tuple[int, int], rgb_size: tuple[int, int],
                          scale_range: tuple[float, float] = SCALE_RANGE, rotation_deg: float = ROTATION_DEG,
                          shift_fraction: float = SHIFT_FRACTION,
                          perspective_fraction: float = PERSPECTIVE_FRACTION) -> tuple[np.ndarray, dict]:
    """A thermal -> RGB homography drawn uniformly (log-uniform in scale) from a never-calibrated rig's range."""
    h, w = rgb_size
    scale = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    angle = float(rng.uniform(-rotation_deg, rotation_deg))
    shift = rng.uniform(-shift_fraction, shift_fraction, size=2)
    H = similarity(scale, angle, (shift[0] * w, shift[1] * h), thermal_size, rgb_size)
    th, tw = thermal_size
    corners = np.array([[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]], np.float32)
    mapped = cv2.perspectiveTransform(corners[None], H)[0]
    jitter_px = perspective_fraction * float(np.hypot(h, w))
    moved = mapped + rng.uniform(-jitter_px, jitter_px, size=(4, 2)).astype(np.float32)
    H = cv2.getPerspectiveTransform(corners, moved).astype(np.float64)
    return H / H[2, 2], {"scale": scale, "rotation_deg": angle, "shift": (float(shift[0]), float(shift[1])),
                         "perspective_px": jitter_px}


def render_thermal(source: np.ndarray, homography: np.ndarray, canvas_size: tuple[int, int],
                   rng: np.random.Generator, gain: float, offset: float, gamma: float, noise: float) -> np.ndarray:
    """The canvas a thermal camera with this pose sees: ``source`` (aligned with the RGB frame) resampled with
    anti-aliasing, photometric changes, noise; what falls outside the recorded frame is a flat, noisy background."""
    h, w = canvas_size
    # how many source pixels one canvas pixel spans: blur by that much before sampling (a lower-resolution sensor)
    area = abs(np.linalg.det(homography[:2, :2])) if abs(homography[2, :2]).max() < 1e-3 else 1.0
    sigma = 0.5 * np.sqrt(max(area, 1.0))
    src = source.astype(np.float32)
    if sigma > 0.6:
        src = cv2.GaussianBlur(src, (0, 0), sigma)
    fill = float(np.median(source))
    warped = cv2.warpPerspective(src, homography, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    warped = 255.0 * np.clip(warped / 255.0, 0, 1) ** gamma
    warped = gain * warped + offset + rng.normal(0, noise, size=warped.shape)
    return np.clip(np.round(warped), 0, 255).astype(np.uint8)


def synthetic_thermal(visible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A "thermal" image that shares only geometry with the visible one: inverted luma, a random tone curve."""
    grey = luminance(visible) / 255.0
    curve = rng.uniform(0.5, 2.0)
    return np.clip(255.0 * (1.0 - grey) ** curve, 0, 255).astype(np.float32)


def make_case(name: str, family: str, ir: np.ndarray, vi: np.ndarray, rng: np.random.Generator,
              canvas_scale: float = CANVAS_SCALE, rig: tuple[np.ndarray, dict] | None = None,
              **ranges: float) -> RigCase:
    """One seeded case from an aligned pair; ``family`` chooses the thermal source (see the module docstring).
    ``rig``: a ``random_rig_homography`` result to reuse (several scenes seen by one rig)."""
    rgb = vi if vi.ndim == 3 else np.repeat(vi[:, :, None], 3, axis=2)
    h, w = rgb.shape[:2]
    canvas = canvas_size((h, w), canvas_scale)
    H, drawn = rig if rig is not None else random_rig_homography(rng, canvas, (h, w), **ranges)
    gain, offset = float(rng.uniform(0.6, 1.3)), float(rng.uniform(-30, 30))
    gamma, noise = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))), float(rng.uniform(1.0, 4.0))
    if family == "control":
        source = synthetic_thermal(rgb, rng)
    elif family == "real":
        source = luminance(ir)
        if source.shape != (h, w):
            raise ValueError(f"{name}: infrared {source.shape} and visible {(h, w)} are not one pixel grid")
    else:
        raise ValueError(f"unknown case family {family!r}")
    thermal = render_thermal(source, H, canvas, rng, gain, offset, gamma, noise)
    warp = RigWarp(drawn["scale"], drawn["rotation_deg"], drawn["shift"], drawn["perspective_px"], gain, offset,
                   gamma, noise)
    return RigCase(name, family, thermal, rgb, H, warp, luminance(ir).astype(np.uint8) if family == "real" else None)


def canvas_size(rgb_size: tuple[int, int], canvas_scale: float = CANVAS_SCALE) -> tuple[int, int]:
    """The uncalibrated thermal camera's frame size for an RGB frame of ``rgb_size``."""
    return (max(16, int(round(rgb_size[0] * canvas_scale))), max(16, int(round(rgb_size[1] * canvas_scale))))


def corner_error_px(estimate: np.ndarray, truth: np.ndarray, thermal_size: tuple[int, int],
                    rgb_size: tuple[int, int]) -> float:
    """The bench's error (RGB pixels): mean distance between where the truth and the estimate put the same thermal
    pixels, at the corners of the truth's footprint clipped to the RGB frame (where a fused image uses thermal
    pixels; beyond the frame a homography is an extrapolation no image constrains)."""
    return displacement_px(truth, estimate, thermal_size, rgb_size)
