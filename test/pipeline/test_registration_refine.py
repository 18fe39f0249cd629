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
