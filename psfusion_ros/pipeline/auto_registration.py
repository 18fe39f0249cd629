"""Thermal → RGB registration from the images alone, with a confidence that says when it cannot know.

``estimate_registration(thermal_frames, rgb_frames)`` takes one pair or several pairs of one rig (a fixed rig
sees many scenes, so the pairs are estimated jointly: their evidence adds up) and returns a homography from
thermal pixels to RGB pixels, the calibration files' convention:

1. both frames become unit grey images and doubled-angle orientation fields
   (:mod:`~psfusion_ros.pipeline.registration_features`), which survive inverted polarity and AGC;
2. without ``initial``, a global search over the range a never-calibrated rig spans (relative scale
   0.55-1.65, roll ±9°, shift ±20 %) proposes candidates (:mod:`~psfusion_ros.pipeline.registration_search`);
3. each candidate is verified by a short ECC refinement at 1/4 resolution, first a similarity, then a
   homography (a similarity step at 1/8 walked good candidates out of their basin on real infrared: 20 of 30
   warped real pairs stayed within 20 px of the warp, 26 of 30 at 1/4); every verified candidate that landed
   somewhere else continues at 1/2, and the correlation there decides (at 1/4 a wrong alignment scored higher
   on 3 of the 15 recorded shared pairs); the winner ends at full resolution, then a quadrant step moves what ECC
   left with a corner off (:mod:`~psfusion_ros.pipeline.registration_refine`);
4. confidence combines how well the frames correlate at the result, how clearly it beats the best *different*
   alignment at 1/2, whether the frames have texture at all, and (several pairs) whether the pairs agree.

With ``initial`` (the live check, ``psfusion-calibrate --init``) there is no search and no 1/4 step: the
refinement starts at 1/2. Started at the estimator's own result on the 15 recorded shared pairs, live checks
(256 px frames) that began at 1/4 walked 5 of them 17-88 px away with full confidence (the monitor would have warned
on a right calibration); beginning at 1/2 (384 px) it was 1 of 15, with the quadrant step 0 (README: Calibrating a
rig).

Low confidence comes with a reason; a caller must not use such a homography (``psfusion-calibrate --auto``
exits 1 and writes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from psfusion_ros.errors import FrameError
from psfusion_ros.pipeline.registration_features import orientation_field, resized, structure, unit_gray
from psfusion_ros.pipeline.registration_refine import Refinement, correlation_at, refine_level, refine_quadrants
from psfusion_ros.pipeline.registration_search import SearchRange, search

#: Candidates of the global search that are verified by a short refinement (then decided at 1/2 resolution).
VERIFY = 4
#: A result is usable at or above this confidence.
CONFIDENT = 0.5
#: Mean field magnitude below which a frame has no usable texture (blank, constant, lens cap).
MIN_STRUCTURE = 0.02
#: Two alignments are "different" when they put the footprint corners this far apart (fraction of the diagonal).
DISTINCT_FRACTION = 0.03
#: Verified candidates closer than this (working pixels at the footprint corners) are one candidate.
SAME_PX = 2.0
#: How far the best (scale, roll) cell of the search stands out of all cells (robust z-score: median/MAD): on the
#: shared pairs mismatched scenes, noise and non-overlapping crops reached 1.0-5.2 (median 2.2-3.0), recorded
#: real pairs 3.1-9.3 (median 6.0). The confidence ramps up between these.
SIGNIFICANCE_RAMP = (4.0, 6.0)
#: Correlation at 1/4 resolution that a real pair reaches: the confidence ramps up between these.
CORRELATION_RAMP = (0.15, 0.30)
#: The best alignment must beat the best different one by this fraction of its correlation for full confidence.
MARGIN_RAMP = (0.02, 0.12)
#: Pairs of one rig whose own refinements differ by more than this (RGB px at the footprint corners) disagree.
DISAGREE_PX = 8.0
#: Side (px) the frames are shrunk to before anything else: full 640x480 detail adds no accuracy on real pairs.
WORKING_SIDE = 640
#: No level is coarser than this many pixels on the RGB frame's long side (small frames skip coarse levels).
MIN_LEVEL_SIDE = 64


def _level(factor: float, long_side: int) -> float:
    return float(min(1.0, max(factor, MIN_LEVEL_SIDE / long_side)))


@dataclass(frozen=True)
class PairReport:
    """How one pair of a joint estimate agrees with it."""

    correlation: float
    offset_px: float  # where this pair alone would move the footprint corners (mean, RGB px)
    thermal_structure: float
    rgb_structure: float


@dataclass(frozen=True)
class RegistrationEstimate:
    homography: np.ndarray  # (3, 3) thermal pixel → RGB pixel
    confidence: float  # 0..1; use the homography only at >= CONFIDENT
    residual_px: float  # spread of the pairs' own refinements (one pair: of its two finest levels), RGB px
    correlation: float  # orientation correlation at 1/4 resolution
    margin: float  # relative lead over the best different alignment (1 = no rival)
    significance: float  # search: robust z-score of the best cell among all (nan when refined from ``initial``)
    reason: str  # why the confidence is low ("" when confident)
    thermal_size: tuple[int, int]
    rgb_size: tuple[int, int]
    per_pair: list[PairReport] = field(default_factory=list)

    @property
    def confident(self) -> bool:
        return self.confidence >= CONFIDENT

    def summary(self) -> str:
        text = (f"confidence {self.confidence:.2f}, correlation {self.correlation:.3f}, margin {self.margin:.2f}, "
                f"significance {self.significance:.1f}, "
                f"residual {self.residual_px:.2f} px, {len(self.per_pair) or 1} pair(s)")
        return text + (f": {self.reason}" if self.reason else "")


def footprint_corners(homography: np.ndarray, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> np.ndarray:
    """(4, 2) RGB pixels: corners of the part of the RGB frame the thermal frame covers under ``homography``."""
    th, tw = thermal_size
    h, w = rgb_size
    corners = np.array([[[0, 0], [tw - 1, 0], [tw - 1, th - 1], [0, th - 1]]], np.float64)
    with np.errstate(all="ignore"):
        foot = cv2.perspectiveTransform(corners, np.asarray(homography, np.float64))[0]
    if not np.isfinite(foot).all():
        return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    x0, y0 = np.clip(foot.min(axis=0), 0, [w - 1, h - 1])
    x1, y1 = np.clip(foot.max(axis=0), 0, [w - 1, h - 1])
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def displacement_px(a: np.ndarray, b: np.ndarray, thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> float:
    """Mean distance (RGB px) between where ``a`` and ``b`` put the same thermal pixels, taken at the corners of
    ``a``'s footprint: how far a fused image registered with ``b`` would be off if ``a`` were right."""
    points = footprint_corners(a, thermal_size, rgb_size)
    with np.errstate(all="ignore"):
        thermal_pts = cv2.perspectiveTransform(points[None], np.linalg.inv(np.asarray(a, np.float64)))
        moved = cv2.perspectiveTransform(thermal_pts, np.asarray(b, np.float64))[0]
    distance = float(np.linalg.norm(moved - points, axis=1).mean())
    return distance if np.isfinite(distance) else float("inf")


def _ramp(value: float, low: float, high: float) -> float:
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


def _prepare(frames: Sequence[np.ndarray], what: str, working_side: int
             ) -> tuple[list[np.ndarray], tuple[int, int], np.ndarray]:
    """Unit grey frames at the working size, their common original size, and the mapping into the working size."""
    if not frames:
        raise FrameError(f"no {what} frames to register")
    sizes = {tuple(np.asarray(f).shape[:2]) for f in frames}
    if len(sizes) != 1:
        raise FrameError(f"{what} frames of one rig must share one size, got {sorted(sizes)}")
    size = sizes.pop()
    if min(size) < 16:
        raise FrameError(f"{what} frames of {size[1]}x{size[0]} are too small to register")
    factor = min(1.0, working_side / max(size))
    grays = [resized(unit_gray(f), factor) for f in frames]
    return [g for g, _ in grays], size, grays[0][1]


def estimate_registration(thermal_frames: np.ndarray | Sequence[np.ndarray],
                          rgb_frames: np.ndarray | Sequence[np.ndarray], initial: np.ndarray | None = None,
                          search_range: SearchRange | None = None, working_side: int = WORKING_SIDE
                          ) -> RegistrationEstimate:
    """The thermal → RGB homography of one rig from one or more pairs (see the module docstring).

    ``initial`` (a homography, e.g. the current calibration) skips the global search and refines from it;
    ``working_side``: frames are shrunk to this long side first (the live monitor uses less, for speed)."""
    if isinstance(thermal_frames, np.ndarray):
        thermal_frames = [thermal_frames]
    if isinstance(rgb_frames, np.ndarray):
        rgb_frames = [rgb_frames]
    if len(thermal_frames) != len(rgb_frames):
        raise FrameError(f"{len(thermal_frames)} thermal frames but {len(rgb_frames)} RGB frames")
    thermals, thermal_size, t_scale = _prepare(thermal_frames, "thermal", working_side)
    rgbs, rgb_size, r_scale = _prepare(rgb_frames, "RGB", working_side)
    work_t, work_r = thermals[0].shape, rgbs[0].shape

    def to_work(matrix: np.ndarray) -> np.ndarray:
        return r_scale @ matrix @ np.linalg.inv(t_scale)

    def to_full(matrix: np.ndarray) -> np.ndarray:
        full = np.linalg.inv(r_scale) @ matrix @ t_scale
        return full / full[2, 2]

    t_struct = [structure(orientation_field(resized(t, 0.5)[0])) for t in thermals]
    r_struct = [structure(orientation_field(resized(r, 0.5)[0])) for r in rgbs]

    def refused(reason: str) -> RegistrationEstimate:
        nan = float("nan")
        return RegistrationEstimate(np.eye(3), 0.0, nan, 0.0, 0.0, nan, reason, thermal_size, rgb_size,
                                    [PairReport(0.0, nan, a, b) for a, b in zip(t_struct, r_struct)])

    if max(t_struct) < MIN_STRUCTURE:
        return refused("the thermal frames have no texture (blank, constant or saturated)")
    if max(r_struct) < MIN_STRUCTURE:
        return refused("the RGB frames have no texture (too dark, blank or covered)")
    usable = [i for i in range(len(thermals)) if t_struct[i] >= MIN_STRUCTURE and r_struct[i] >= MIN_STRUCTURE]
    ts, rs = [thermals[i] for i in usable], [rgbs[i] for i in usable]

    long_side = max(work_r)
    verify_level = _level(0.25, long_side)
    diagonal = float(np.hypot(*work_r))
    significance = float("nan")
    if initial is None:
        found = search(ts, rs, search_range or SearchRange())
        median = float(np.median(found.scores))
        spread = 1.4826 * float(np.median(np.abs(found.scores - median))) + 1e-9
        significance = (float(found.scores.max()) - median) / spread
        starts = [refine_level(ts, rs, c.homography, verify_level, "similarity").homography
                  for c in found.candidates[:VERIFY]]
        verified = [refine_level(ts, rs, H, verify_level, "homography") for H in starts]
    else:  # a local refinement starts at 1/2 (from a right calibration the 1/4 level walked real pairs away)
        verified = [Refinement(to_work(np.asarray(initial, np.float64)), float("nan"), 0)]
    # the verified candidates that landed in different places go on to 1/2, whose correlation decides: at 1/4 a
    # wrong alignment out-correlated the right one on 3 of the 15 recorded shared pairs (README: Calibrating a rig)
    unique: list = []
    for r in sorted(verified, key=lambda r: -r.correlation):
        if all(displacement_px(u.homography, r.homography, work_t, work_r) > SAME_PX for u in unique):
            unique.append(r)
    half_level = _level(0.5, long_side)
    halves = [refine_level(ts, rs, r.homography, half_level, "homography") for r in unique]
    pick = int(np.argmax([h.correlation for h in halves]))
    best, half = unique[pick], halves[pick]
    rivals = [h.correlation for h in halves
              if displacement_px(half.homography, h.homography, work_t, work_r) > DISTINCT_FRACTION * diagonal]
    rival = max(rivals) if rivals else 0.0
    margin = float((half.correlation - rival) / half.correlation) if half.correlation > 0 else 0.0
    if initial is not None:
        margin = 1.0  # no search, no rival: a local refinement says nothing about ambiguity

    final = refine_quadrants(ts, rs, refine_level(ts, rs, half.homography, 1.0, "homography"), 1.0)
    # the correlation the confidence ramps on is taken at 1/4; a local refinement scores where it ended
    correlation = best.correlation if initial is None else correlation_at(ts, rs, final.homography, verify_level)
    scale = float(np.sqrt(abs(np.linalg.det(np.linalg.inv(r_scale)[:2, :2]))))  # working → full RGB pixels
    per_pair: list[PairReport] = []
    offsets = []
    if len(ts) > 1:
        for t, r in zip(ts, rs):
            own = refine_level([t], [r], final.homography, _level(0.5, long_side), "homography")
            offsets.append(displacement_px(final.homography, own.homography, work_t, work_r) * scale)
            per_pair.append(PairReport(own.correlation, offsets[-1], structure(orientation_field(t)),
                                       structure(orientation_field(r))))
        residual = float(np.median(offsets))
    else:
        residual = displacement_px(half.homography, final.homography, work_t, work_r) * scale
    evidence = 1.0 if initial is not None else _ramp(significance, *SIGNIFICANCE_RAMP)
    confidence = evidence * _ramp(correlation, *CORRELATION_RAMP) * _ramp(margin, *MARGIN_RAMP)
    reason = ""
    if evidence < 1 and confidence < CONFIDENT:
        reason = (f"no alignment stands out of the search (significance {significance:.1f}, needs "
                  f"{SIGNIFICANCE_RAMP[1]:.0f}): not one scene, no overlap, or too little shared structure; "
                  "try more pairs of the rig")
    elif _ramp(correlation, *CORRELATION_RAMP) < 1 and confidence < CONFIDENT:
        reason = (f"the frames barely correlate (orientation correlation {correlation:.2f}): not one scene, "
                  "no overlap, or too little shared structure")
    elif confidence < CONFIDENT:
        reason = (f"no distinct alignment: a different one fits almost as well (margin {margin:.2f}); try more "
                  "pairs of the rig")
    if offsets and np.median(offsets) > DISAGREE_PX:
        confidence = min(confidence, 0.3)
        reason = f"the pairs disagree by a median {np.median(offsets):.1f} px (moving rig, parallax?)"
    foot = footprint_corners(final.homography, work_t, work_r)
    area = (foot[1, 0] - foot[0, 0]) * (foot[2, 1] - foot[1, 1]) / float(work_r[0] * work_r[1])
    if area < 0.05:
        confidence, reason = 0.0, "the thermal frame would cover under 5 % of the RGB frame (no overlap)"
    return RegistrationEstimate(to_full(final.homography), round(confidence, 4), residual, correlation, margin,
                                significance, reason, thermal_size, rgb_size, per_pair)
