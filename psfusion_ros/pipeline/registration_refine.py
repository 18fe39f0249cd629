"""Coarse-to-fine refinement of a thermal → RGB homography: ECC on orientation fields.

The objective is the enhanced correlation coefficient (Evangelidis & Psarakis, PAMI 2008) between the RGB
frame's orientation field and the field of the thermal frame warped into the RGB grid, over a region fixed
at the start of each level (scoring over the moving overlap rewards shrinking the thermal footprint onto a
small, lucky patch) and kept clear of the RGB frame's outer band (``BORDER_FRACTION``). Each iteration warps
the thermal *image* and recomputes its field, because orientation fields do not resample under rotation (a 5°
roll turns every doubled angle by 10°). A step is kept only if the correlation rises (halved up to four times
otherwise).

Measured on the shared pairs (README: Calibrating a rig): Gauss-Newton on squared differences of the same
fields drifted by tens of pixels on real infrared (it is pulled by edges present in one modality only), and
patch matching + RANSAC was less consistent than this (its local matches are unreliable across modalities);
correlation integrated over the whole overlap is what stays put. Quarter-footprint patches are large enough to
match (:func:`refine_quadrants`), and their move is kept only when that whole-overlap correlation rises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from psfusion_ros.pipeline.registration_features import orientation_field, resized

#: (RGB scale of the level, motion model). 1/8 is not used: its correlation has stronger maxima far from the
#: truth, for a similarity too (it walked search candidates out of their basin on real infrared).
SCHEDULE = ((0.25, "homography"), (0.5, "homography"), (1.0, "homography"))
ITERATIONS = {0.25: 20, 0.5: 15, 1.0: 8}
#: Stop when no parameter moves a point by more than this (pixels of the level).
TOLERANCE_PX = 0.01
#: The outer band of the RGB frame that is never scored (fraction of the level's long side). Where the thermal
#: view reaches the RGB frame's edge, what it shows there need not be what the RGB frame shows: a wider thermal
#: view ends in whatever lies beyond the recorded scene (the bench's flat fill, an undistortion border, vignetting),
#: and the step where that begins falls within the frames' misalignment of the RGB border, an edge in one modality
#: only that drags the fit. Refinements started at the consistent truth of the 30 warped real pairs walked a median
#: 2.19 px with no band, 1.52 / 1.15 / 1.11 / 1.23 px with 3 / 4 / 5 / 6 % (README: Calibrating a rig).
BORDER_FRACTION = 0.05
#: The quadrant translation search (:func:`refine_quadrants`): its reach (pixels of the level) and how much of a
#: quadrant a shift must keep. On the bench's real cases 16 and 24 px gave the same results.
QUADRANT_RADIUS_PX = 16
QUADRANT_MIN_OVERLAP = 0.6
_HALVINGS = 4
_MIN_PIXELS = 200

#: columns of the 8 homography parameters each motion model uses (similarity: two combined columns)
_MODEL_PARAMS = {"translation": [4, 5], "affine": [0, 1, 2, 3, 4, 5], "homography": list(range(8))}


@dataclass(frozen=True)
class Refinement:
    homography: np.ndarray
    correlation: float  # at the last level
    iterations: int


def _jacobian(x: np.ndarray, y: np.ndarray, model: str) -> tuple[np.ndarray, np.ndarray]:
    """∂W/∂p at p = 0 for W = [[1+p0, p2, p4], [p1, 1+p3, p5], [p6, p7, 1]], per pixel: (N, P) for x and y."""
    z, o = np.zeros_like(x), np.ones_like(x)
    jx = np.stack([x, z, y, z, o, z, -x * x, -x * y], -1)
    jy = np.stack([z, x, z, y, z, o, -x * y, -y * y], -1)
    if model == "similarity":  # p0 = p3 = a, p1 = -p2 = b
        return (np.stack([jx[:, 0] + jx[:, 3], jx[:, 1] - jx[:, 2], jx[:, 4], jx[:, 5]], -1),
                np.stack([jy[:, 0] + jy[:, 3], jy[:, 1] - jy[:, 2], jy[:, 4], jy[:, 5]], -1))
    cols = _MODEL_PARAMS[model]
    return jx[:, cols], jy[:, cols]


def _update(delta: np.ndarray, model: str) -> np.ndarray:
    p = np.zeros(8)
    if model == "similarity":
        p[[0, 1, 2, 3, 4, 5]] = delta[0], delta[1], -delta[1], delta[0], delta[2], delta[3]
    else:
        p[_MODEL_PARAMS[model]] = delta
    return np.array([[1 + p[0], p[2], p[4]], [p[1], 1 + p[3], p[5]], [p[6], p[7], 1.0]])


def _moved_field(thermal: np.ndarray, mx: np.ndarray, my: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The field of the thermal frame resampled onto the RGB grid (the warped image's own field, see above)."""
    moved = cv2.remap(thermal, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return orientation_field(moved) * inside[None]


class _Level:
    """Every pair at one resolution, and the correlation of a warp (normalized RGB coordinates → thermal pixels)."""

    def __init__(self, thermals: Sequence[np.ndarray], rgbs: Sequence[np.ndarray], factor: float,
                 homography: np.ndarray, model: str) -> None:
        rgb_small = [resized(r, factor) for r in rgbs]
        self.rgb_scale = rgb_small[0][1]
        self.templates = [orientation_field(r) for r, _ in rgb_small]
        # the thermal frame at about the level's resolution in RGB pixels (never upsampled)
        zoom = np.sqrt(abs(np.linalg.det(homography[:2, :2])))  # RGB pixels per thermal pixel
        thermal_factor = float(np.clip(factor * zoom * 1.25, 0.05, 1.0))
        thermal_small = [resized(t, thermal_factor) for t in thermals]
        self.thermal_scale = thermal_small[0][1]
        self.thermals = [t for t, _ in thermal_small]
        h, w = self.templates[0].shape[1:]
        self.size = (h, w)
        self.centre, self.unit = np.array([(w - 1) / 2, (h - 1) / 2]), max(w, h) / 2
        self.to_normalized = np.array([[1 / self.unit, 0, -self.centre[0] / self.unit],
                                       [0, 1 / self.unit, -self.centre[1] / self.unit], [0, 0, 1.0]])
        margin = min(int(np.ceil(BORDER_FRACTION * max(h, w))), (min(h, w) - 1) // 4)
        self.scored = np.zeros((h, w), bool)
        self.scored[margin:h - margin, margin:w - margin] = True
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        self.points = np.stack([(xx - self.centre[0]) / self.unit, (yy - self.centre[1]) / self.unit,
                                np.ones_like(xx)], -1).reshape(-1, 3)
        jx, jy = _jacobian(self.points[:, 0], self.points[:, 1], model)
        self.jx, self.jy = jx.astype(np.float32), jy.astype(np.float32)  # per-pixel arrays: float32 halves the cost
        self.model = model
        self.regions: list[np.ndarray] | None = None

    def _fix_region(self, inside: np.ndarray) -> None:
        """The pixels scored for the whole level, and what depends only on them (template side, Jacobian rows)."""
        self.regions = [inside]
        self.index = np.flatnonzero(inside.ravel())
        refs = []
        for template in self.templates:
            ref = template.reshape(len(template), -1)[:, self.index]
            refs.append((ref - ref.mean(axis=1, keepdims=True, dtype=np.float64)).ravel())
        self.reference = np.concatenate(refs).astype(np.float32)
        self.jx_region, self.jy_region = self.jx[self.index], self.jy[self.index]

    def warp_of(self, homography: np.ndarray) -> np.ndarray:
        return self.thermal_scale @ np.linalg.inv(homography) @ np.linalg.inv(self.rgb_scale) @ np.linalg.inv(
            self.to_normalized)

    def homography_of(self, warp: np.ndarray) -> np.ndarray:
        H = np.linalg.inv(np.linalg.inv(self.thermal_scale) @ warp @ self.to_normalized @ self.rgb_scale)
        return H / H[2, 2]

    def sample(self, warp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where each scored RGB pixel of the level samples the thermal frame, and which ones land inside it."""
        h, w = self.size
        mapped = self.points @ warp.T
        with np.errstate(all="ignore"):
            mx = (mapped[:, 0] / mapped[:, 2]).reshape(h, w).astype(np.float32)
            my = (mapped[:, 1] / mapped[:, 2]).reshape(h, w).astype(np.float32)
        th, tw = self.thermals[0].shape
        inside = (np.isfinite(mx) & np.isfinite(my) & (mapped[:, 2].reshape(h, w) > 0)
                  & (mx >= 2) & (my >= 2) & (mx <= tw - 3) & (my <= th - 3))
        inside = cv2.erode(inside.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & self.scored
        return np.nan_to_num(mx, nan=-1e4), np.nan_to_num(my, nan=-1e4), inside

    def moved_fields(self, warp: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Each thermal frame's field on the level's RGB grid (zero outside the thermal frame), and the mask."""
        mx, my, inside = self.sample(warp)
        return [_moved_field(t, mx, my, inside) for t in self.thermals], inside

    def evaluate(self, warp: np.ndarray, with_jacobian: bool
                 ) -> tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray] | None]:
        mx, my, inside = self.sample(warp)
        if self.regions is None:  # the region scored for the whole level: where the thermal frame is now
            self._fix_region(inside)
        if np.count_nonzero(inside.ravel()[self.index]) < _MIN_PIXELS:
            return -1.0, None
        movs, jacs = [], []
        gain = np.float32(self.unit / 8)
        for thermal in self.thermals:
            field = _moved_field(thermal, mx, my, inside)
            mov = field.reshape(len(field), -1)[:, self.index]
            movs.append((mov - mov.mean(axis=1, keepdims=True, dtype=np.float64)).ravel())
            if with_jacobian:
                for c in field:
                    gx = cv2.Sobel(c, cv2.CV_32F, 1, 0, ksize=3, scale=gain).ravel()[self.index]
                    gy = cv2.Sobel(c, cv2.CV_32F, 0, 1, ksize=3, scale=gain).ravel()[self.index]
                    jacs.append(gx[:, None] * self.jx_region + gy[:, None] * self.jy_region)
        ref = self.reference
        mov = np.concatenate(movs).astype(np.float32)
        rho = float(np.dot(ref, mov) / np.sqrt(float(np.dot(ref, ref)) * float(np.dot(mov, mov)) + 1e-18))
        return rho, ((ref, mov, np.concatenate(jacs)) if with_jacobian else None)


def _ecc_step(ref: np.ndarray, mov: np.ndarray, jac: np.ndarray) -> np.ndarray | None:
    """The ECC parameter update (Evangelidis & Psarakis 2008, eqs. 17-20)."""
    gtg = (jac.T @ jac).astype(np.float64)
    try:
        q = np.linalg.inv(gtg + 1e-12 * np.eye(len(gtg)))
    except np.linalg.LinAlgError:
        return None
    g_mov, g_ref = (jac.T @ mov).astype(np.float64), (jac.T @ ref).astype(np.float64)
    mm, rm, rr = float(np.dot(mov, mov)), float(np.dot(ref, mov)), float(np.dot(ref, ref))
    numerator = mm - g_mov @ q @ g_mov
    denominator = rm - g_ref @ q @ g_mov
    if denominator > 0:
        lam = numerator / denominator
    else:
        lam = max(np.sqrt((g_mov @ q @ g_mov) / max(g_ref @ q @ g_ref, 1e-18)),
                  (g_ref @ q @ g_mov - rm) / max(rr, 1e-18))
    return q @ (lam * g_ref - g_mov)


def refine_level(thermals: Sequence[np.ndarray], rgbs: Sequence[np.ndarray], homography: np.ndarray, factor: float,
                 model: str, iterations: int | None = None) -> Refinement:
    """ECC at one resolution for unit-grey frames of one rig; the start is returned when nothing improves it."""
    level = _Level(thermals, rgbs, factor, homography, model)
    warp = level.warp_of(homography)
    rho, pack = level.evaluate(warp, True)
    done = 0
    for _ in range(iterations or ITERATIONS.get(factor, 10)):
        done += 1
        if pack is None:
            break
        delta = _ecc_step(*pack)
        if delta is None or not np.isfinite(delta).all():
            break
        step, accepted = 1.0, False
        for _ in range(_HALVINGS + 1):
            trial = warp @ _update(step * delta, model)
            trial_rho, _ = level.evaluate(trial, False)
            if trial_rho > rho:
                accepted = True
                break
            step *= 0.5
        if not accepted:
            break
        warp = trial
        rho, pack = level.evaluate(warp, True)
        if np.abs(step * delta).max() * level.unit < TOLERANCE_PX:
            break
    return Refinement(level.homography_of(warp), rho, done)


def correlation_at(thermals: Sequence[np.ndarray], rgbs: Sequence[np.ndarray], homography: np.ndarray,
                   factor: float) -> float:
    """The correlation a homography reaches at one resolution, without moving it (how well a calibration in use
    fits the frames, on the same scale as :func:`refine_level`'s)."""
    level = _Level(thermals, rgbs, factor, homography, "homography")
    return level.evaluate(level.warp_of(homography), False)[0]


def _best_shift(reference: np.ndarray, moving: np.ndarray, mask: np.ndarray, radius: int) -> np.ndarray:
    """The shift t (x, y; |t| <= radius) that maximizes the normalized correlation of ``reference(x)`` with
    ``moving(x - t)`` over the mask (both (C, H, W) fields), all shifts at once by FFT."""
    h, w = mask.shape
    size = (cv2.getOptimalDFTSize(h + 2 * radius), cv2.getOptimalDFTSize(w + 2 * radius))

    def spectrum(image: np.ndarray) -> np.ndarray:
        return np.fft.rfft2(image, size)

    def correlate(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # Σ_x a(x) b(x - t) for every t, from spectra
        return np.fft.irfft2(a * np.conj(b), size)

    m = mask.astype(np.float64)
    mask_spectrum = spectrum(m)  # three of the four correlations need it
    numerator = correlate(spectrum(reference * m), spectrum(moving * m)).sum(axis=0)
    ref_energy = correlate(spectrum((reference ** 2).sum(axis=0) * m), mask_spectrum)
    mov_energy = correlate(mask_spectrum, spectrum((moving ** 2).sum(axis=0) * m))
    overlap = correlate(mask_spectrum, mask_spectrum)
    rows, cols = np.arange(-radius, radius + 1) % size[0], np.arange(-radius, radius + 1) % size[1]
    window = np.ix_(rows, cols)
    numerator, ref_energy, mov_energy, overlap = (a[window] for a in (numerator, ref_energy, mov_energy, overlap))
    usable = overlap > QUADRANT_MIN_OVERLAP * overlap[radius, radius]  # a shift must keep most of the quadrant
    score = np.where(usable, numerator / np.sqrt(np.maximum(ref_energy * mov_energy, 0.0) + 1e-12), -np.inf)
    if not score.max() > score[radius, radius]:  # ties (a quadrant without structure) stay where they are
        return np.zeros(2)
    dy, dx = np.unravel_index(int(np.argmax(score)), score.shape)
    return np.array([dx - radius, dy - radius], np.float64)


def refine_quadrants(thermals: Sequence[np.ndarray], rgbs: Sequence[np.ndarray], result: Refinement, factor: float,
                     radius: int = QUADRANT_RADIUS_PX) -> Refinement:
    """Moves each quadrant of the footprint to where its own translation search puts it, refits the homography to
    the four moves, refines from there; the better of the two on ``result``'s region is returned.

    ECC stops where the footprint's centre is right but a corner is 10-40 px off (a perspective maximum of its
    own: seen on the stuck real-infrared cases of the bench, whose correlation at the truth was higher); one
    quadrant's translation search sees past that maximum."""
    level = _Level(thermals, rgbs, factor, result.homography, "homography")
    warp = level.warp_of(result.homography)
    fields, inside = level.moved_fields(warp)
    ys, xs = np.nonzero(inside)
    if len(xs) < 4 * _MIN_PIXELS:
        return result
    own, _ = level.evaluate(warp, False)  # fixes the region both are scored on
    x_edges = np.linspace(xs.min(), xs.max() + 1, 3).round().astype(int)
    y_edges = np.linspace(ys.min(), ys.max() + 1, 3).round().astype(int)
    centres, moved = [], []
    for y0, y1 in zip(y_edges[:-1], y_edges[1:]):
        for x0, x1 in zip(x_edges[:-1], x_edges[1:]):
            mask = inside[y0:y1, x0:x1]
            if np.count_nonzero(mask) < _MIN_PIXELS:
                return result
            reference = np.concatenate([t[:, y0:y1, x0:x1] for t in level.templates])
            moving = np.concatenate([f[:, y0:y1, x0:x1] for f in fields])
            centre = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
            centres.append(centre)
            moved.append(centre + _best_shift(reference, moving, mask, radius))
    if np.allclose(centres, moved):  # every quadrant is where it wants to be
        return result
    correction = cv2.getPerspectiveTransform(np.float32(centres), np.float32(moved)).astype(np.float64)
    start = np.linalg.inv(level.rgb_scale) @ correction @ level.rgb_scale @ result.homography
    alternative = refine_level(thermals, rgbs, start / start[2, 2], factor, "homography")
    score, _ = level.evaluate(level.warp_of(alternative.homography), False)
    return Refinement(alternative.homography, score, result.iterations + alternative.iterations) if score > own \
        else result


def refine(thermals: Sequence[np.ndarray], rgbs: Sequence[np.ndarray], homography: np.ndarray,
           schedule: Sequence[tuple[float, str]] = SCHEDULE) -> Refinement:
    """Every level of ``schedule`` in turn, each starting where the previous one ended."""
    result = Refinement(np.asarray(homography, np.float64), -1.0, 0)
    for factor, model in schedule:
        result = refine_level(thermals, rgbs, result.homography, factor, model)
    return result
