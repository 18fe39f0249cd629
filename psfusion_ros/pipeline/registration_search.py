"""Global search for a never-calibrated rig: relative scale × roll on a grid, every shift at once by FFT.

Local optimizers (ECC, Mattes MI, SIFT + RANSAC) fail on such rigs because they start outside their basin;
this stage finds the basin. At a low resolution (``SEARCH_SIDE`` pixels on the RGB frame's long side) the
thermal orientation field is scaled and rolled about the frame centres for every (scale, roll) of the grid,
and its correlation with the RGB field is computed for all shifts in one FFT. The score is the correlation
divided by both fields' total energies (not by the overlap's): on the shared pairs this put the true
alignment first more often than overlap-normalized correlation, which rewards small, lucky overlaps, and it
needs a third of the transforms. Several pairs of one rig add their scores (the same transform serves all).
The best distinct candidates go to :mod:`~psfusion_ros.pipeline.registration_refine`, which decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from psfusion_ros.pipeline.registration_features import orientation_field, rotate_field, scale_matrix

#: RGB long side (pixels) of the search; 128 → 160 → 192 found the truth first in 25 → 26 → 27 of 30 warped
#: real pairs (0.17 → 0.22 → 0.8 s per search on 2 cores).
SEARCH_SIDE = 160
SCALE_STEP = 1.05
ROLL_STEP_DEG = 2.0
#: Candidates handed to the refinement: the truth was among the first 12 in 29 of 30 warped real pairs.
CANDIDATES = 12
_CHUNK = 48


@dataclass(frozen=True)
class SearchRange:
    """The transforms a never-calibrated rig may need (relative scale 1: the fields of view match)."""

    scale: tuple[float, float] = (0.55, 1.65)
    roll_deg: float = 9.0
    shift: float = 0.2  # fraction of the RGB frame, each axis

    def grid(self) -> list[tuple[float, float]]:
        lo, hi = np.log(self.scale[0]), np.log(self.scale[1])
        scales = np.exp(np.arange(lo, hi + 1e-9, np.log(SCALE_STEP)))
        rolls = np.arange(-self.roll_deg, self.roll_deg + 1e-9, ROLL_STEP_DEG)
        return [(float(s), float(r)) for s in scales for r in rolls]


@dataclass(frozen=True)
class Candidate:
    homography: np.ndarray  # thermal pixel → RGB pixel, full resolution
    score: float
    scale: float
    roll_deg: float


@dataclass(frozen=True)
class SearchResult:
    candidates: list[Candidate]
    #: the best score of every (scale, roll) cell: the distribution a wrong alignment draws from
    scores: np.ndarray


def similarity(scale: float, roll_deg: float, shift_px: tuple[float, float], thermal_size: tuple[int, int],
               rgb_size: tuple[int, int]) -> np.ndarray:
    """Thermal → RGB: the two frames' fields of view matched, then scale and roll about the RGB centre, then a
    shift (pixels)."""
    h, w = rgb_size
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    a = np.deg2rad(roll_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    about = np.eye(3)
    about[:2, :2] = rot
    about[:2, 2] = centre - rot @ centre + np.asarray(shift_px, float)
    return about @ scale_matrix(thermal_size, rgb_size)


class _PairFields:
    """One pair at the search resolution: the RGB field's FFT, the thermal field to transform."""

    def __init__(self, thermal: np.ndarray, rgb: np.ndarray, size: tuple[int, int], padded: tuple[int, int],
                 torch: Any) -> None:
        h, w = size
        self.thermal = orientation_field(cv2.resize(thermal, (w, h), interpolation=cv2.INTER_AREA))
        field = orientation_field(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA))
        oy, ox = (padded[0] - h) // 2, (padded[1] - w) // 2
        canvas = np.zeros(padded, np.complex64)
        canvas[oy:oy + h, ox:ox + w] = field[0] + 1j * field[1]
        self.rgb_fft = torch.fft.fft2(torch.from_numpy(canvas))
        self.rgb_norm = float(np.sqrt((np.abs(canvas) ** 2).sum())) + 1e-12


def search(thermals: Sequence[np.ndarray], rgbs: Sequence[np.ndarray], search_range: SearchRange = SearchRange(),
           candidates: int = CANDIDATES) -> SearchResult:
    """The best distinct similarity transforms for unit-grey frames of one rig (all thermal frames one size,
    all RGB frames one size)."""
    import torch  # batched FFTs on every core; imported here so a local refinement never loads torch

    H, W = rgbs[0].shape
    th, tw = thermals[0].shape
    f = SEARCH_SIDE / max(H, W)
    h, w = max(16, int(round(H * f))), max(16, int(round(W * f)))
    sy, sx = int(np.ceil(search_range.shift * h)), int(np.ceil(search_range.shift * w))
    extent = search_range.scale[1] * 1.1
    padded = (cv2.getOptimalDFTSize(int(h * (extent + 1) / 2 + sy + 4)),
              cv2.getOptimalDFTSize(int(w * (extent + 1) / 2 + sx + 4)))
    oy, ox = (padded[0] - h) // 2, (padded[1] - w) // 2
    pairs = [_PairFields(t, r, (h, w), padded, torch) for t, r in zip(thermals, rgbs)]
    grid = search_range.grid()
    rows = torch.arange(-sy, sy + 1) % padded[0]
    cols = torch.arange(-sx, sx + 1) % padded[1]
    offset = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1.0]])
    total = np.zeros((len(grid), (2 * sy + 1) * (2 * sx + 1)), np.float64)
    for pair in pairs:
        for start in range(0, len(grid), _CHUNK):
            chunk = grid[start:start + _CHUNK]
            fields, norms = [], []
            for scale, roll in chunk:
                m = (offset @ similarity(scale, roll, (0, 0), (h, w), (h, w)))[:2]
                moved = np.stack([cv2.warpAffine(c, m, padded[::-1], flags=cv2.INTER_LINEAR) for c in pair.thermal])
                moved = rotate_field(moved, roll)
                z = (moved[0] + 1j * moved[1]).astype(np.complex64)
                fields.append(z)
                norms.append(float(np.sqrt((np.abs(z) ** 2).sum())) + 1e-12)
            spectra = torch.fft.fft2(torch.from_numpy(np.stack(fields)))
            corr = torch.fft.ifft2(pair.rgb_fft[None] * spectra.conj()).real  # Σ_x Re(B(x)·conj(A(x − t)))
            window = corr[:, rows][:, :, cols].reshape(len(chunk), -1).numpy()
            total[start:start + len(chunk)] += window / (np.asarray(norms)[:, None] * pair.rgb_norm)
    total /= len(pairs)
    best, where = total.max(axis=1), total.argmax(axis=1)
    picked: list[tuple[float, float, int, int, float]] = []
    for k in np.argsort(-best):
        scale, roll = grid[k]
        ty, tx = divmod(int(where[k]), 2 * sx + 1)
        ty, tx = ty - sy, tx - sx
        if all(abs(np.log(scale / p[0])) > 1.5 * np.log(SCALE_STEP) or abs(roll - p[1]) > 1.5 * ROLL_STEP_DEG
               or abs(tx - p[2]) > 3 or abs(ty - p[3]) > 3 for p in picked):
            picked.append((scale, roll, tx, ty, float(best[k])))
        if len(picked) >= candidates:
            break
    to_full = np.linalg.inv(scale_matrix((H, W), (h, w)))
    from_thermal = scale_matrix((th, tw), (h, w))
    out = []
    for scale, roll, tx, ty, score in picked:
        coarse = similarity(scale, roll, (tx, ty), (h, w), (h, w))
        full = to_full @ coarse @ from_thermal
        out.append(Candidate(full / full[2, 2], score, scale, roll))
    return SearchResult(out, best)
