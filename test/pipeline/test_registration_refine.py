"""The ECC refinement on orientation fields: what it scores and what it must not be dragged by."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from psfusion_ros.pipeline import registration_refine
from psfusion_ros.pipeline.auto_registration import displacement_px
from psfusion_ros.pipeline.registration_refine import refine_level

SIZE = (160, 208)


def _scene(seed: int) -> np.ndarray:
    """A smooth unit-grey scene with weak, sparse edges (a strong step stands out against it)."""
    texture = cv2.GaussianBlur(np.random.default_rng(seed).random(SIZE).astype(np.float32), (0, 0), 6.0)
    return (texture - texture.min()) / (texture.max() - texture.min())


def _walk_from_truth(seed: int) -> float:
    """Where refinement at 1/2 then full resolution, started at the truth (identity), ends (RGB px)."""
    rgb = _scene(seed)
    thermal = 1.0 - rgb  # inverted polarity: only the geometry is shared
    # a wider thermal view whose content ends a few pixels inside the RGB frame (left and top): a flat band with a
    # step edge that the RGB frame does not have
    thermal[:, :6] = 0.5
    thermal[:4, :] = 0.5
    homography = np.eye(3)
    for factor in (0.5, 1.0):
        homography = refine_level([thermal], [rgb], homography, factor, "homography").homography
    return displacement_px(np.eye(3), homography, SIZE, SIZE)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_step_edge_in_the_frames_outer_band_does_not_drag_the_fit(seed: int, monkeypatch) -> None:
    assert _walk_from_truth(seed) < 0.05
    # the same frames scored up to the edge: the step pulls the fit off the truth (what the band is for)
    monkeypatch.setattr(registration_refine, "BORDER_FRACTION", 0.0)
    assert _walk_from_truth(seed) > 0.15


@pytest.mark.parametrize("shift", [(5, -3), (-9, 12), (0, 0)])
def test_the_quadrant_search_finds_a_known_shift(shift: tuple[int, int]) -> None:
    tx, ty = shift
    reference = registration_refine.orientation_field(_scene(3) ** 0.5)
    moving = np.roll(reference, (-ty, -tx), axis=(1, 2))  # moving(x) = reference(x + t): reference(x) = moving(x - t)
    mask = np.zeros(SIZE, bool)
    mask[20:-20, 20:-20] = True
    found = registration_refine._best_shift(reference, moving, mask, 16)
    assert tuple(found) == (tx, ty)


def test_a_quadrant_step_ends_at_the_truth_and_never_scores_below_its_start() -> None:
    rgb = _scene(4) ** 0.5
    thermal = 1.0 - rgb
    corners = np.float32([[0, 0], [SIZE[1] - 1, 0], [SIZE[1] - 1, SIZE[0] - 1], [0, SIZE[0] - 1]])
    bent = corners.copy()
    bent[2] += (9, 7)  # one corner 11 px off, the others right: the pattern ECC stopped at on real infrared
    start = cv2.getPerspectiveTransform(corners, bent).astype(np.float64)
    stuck = registration_refine.Refinement(start, registration_refine.correlation_at([thermal], [rgb], start, 1.0), 0)
    result = registration_refine.refine_quadrants([thermal], [rgb], stuck, 1.0)
    assert result.correlation >= stuck.correlation
    assert displacement_px(np.eye(3), result.homography, SIZE, SIZE) < 0.5  # a step that goes wrong keeps the start
    # (2.85 px off); where ECC alone stopped on real infrared: test_auto_registration's stuck rig cases


def test_a_quadrant_without_structure_does_not_move() -> None:
    flat = np.zeros((2, *SIZE), np.float32)
    mask = np.ones(SIZE, bool)
    assert tuple(registration_refine._best_shift(flat, flat, mask, 16)) == (0, 0)
