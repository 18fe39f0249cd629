"""``tang2022`` and ``tang2023`` against the MATLAB scripts they reproduce, as run by GNU Octave (numbers in
test/data/metrics/octave_tang_metrics.json), plus hand-derived cases for what Octave could not run (MATLAB's ssim)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from helpers import DATA_DIR, SHARED_PAIRS
from psfusion_ros import fusion_metrics
from psfusion_ros.metrics import PROFILES, profile_source
from psfusion_ros.metrics.matlab import conv2_same
from psfusion_ros.metrics.tang2023 import matlab_ssim

GOLDEN = json.loads((DATA_DIR / "metrics" / "octave_tang_metrics.json").read_text())["metrics"]
TOLERANCE = 1e-6  # relative; Qabf included: the Sobel sums follow Octave's conv2 order (see test below)


def _grey(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), np.float32)


def _check(name: str, f: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    for profile in ("tang2022", "tang2023"):
        ours = fusion_metrics(f, a, b, profile)
        for metric, expected in GOLDEN[name][profile].items():
            assert abs(ours[metric] - expected) <= TOLERANCE * abs(expected), (name, profile, metric, ours[metric],
                                                                             expected)


@pytest.mark.parametrize("name", sorted(n for n in GOLDEN if n.startswith("gen/")))
def test_generated_triples_reproduce_octave(name: str) -> None:
    stem = DATA_DIR / "metrics" / name.removeprefix("gen/")
    _check(name, *(_grey(f"{stem}_{k}.png") for k in ("fused", "ir", "vi")))


@pytest.mark.skipif(not SHARED_PAIRS.is_dir(), reason="../shared sample pairs not present")
@pytest.mark.parametrize("name", sorted(n for n in GOLDEN if not n.startswith("gen/")))
def test_real_pairs_reproduce_octave(name: str) -> None:
    dataset, file = name.split("/")
    a, b = (np.asarray(Image.open(SHARED_PAIRS / dataset / sub / file).convert("L")) for sub in ("ir", "vi"))
    if dataset == "tno":
        f = np.maximum(a, b)
    else:
        f = ((a.astype(int) * 5 + b.astype(int) * 3 + 4) // 8).astype(np.uint8)
    _check(name, *(x.astype(np.float32) for x in (f, a, b)))


def _ssim_by_definition(x: np.ndarray, y: np.ndarray, dynamic_range: float = 1.0) -> float:
    """MATLAB ssim written out per pixel: 11x11 Gaussian weights (σ 1.5), replicate padding, C1/C2 from the range."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    xp, yp = np.pad(x, 5, mode="edge"), np.pad(y, 5, mode="edge")
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2
    values = []
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            bx, by = xp[i:i + 11, j:j + 11], yp[i:i + 11, j:j + 11]
            mx, my = (w * bx).sum(), (w * by).sum()
            vx, vy = (w * bx * bx).sum() - mx * mx, (w * by * by).sum() - my * my
            cxy = (w * bx * by).sum() - mx * my
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_matlab_ssim_semantics_by_hand() -> None:
    rng = np.random.default_rng(5)
    x = np.round(cv2.GaussianBlur(rng.random((15, 17)) * 255, (0, 0), 1.0))
    y = np.clip(x + rng.normal(0, 12, x.shape), 0, 255).round()
    assert matlab_ssim(x, y) == pytest.approx(_ssim_by_definition(x, y), rel=1e-12)
    assert matlab_ssim(x, x) == pytest.approx(1.0, rel=1e-12)
    # DynamicRange 1 on [0, 255] data: the constants vanish, so a flat-vs-flat pair of different levels scores
    # (2·a·b + 1e-4) / (a² + b² + 1e-4) from the luminance term alone
    flat_a, flat_b = np.full((12, 12), 100.0), np.full((12, 12), 150.0)
    assert matlab_ssim(flat_a, flat_b) == pytest.approx((2 * 100 * 150 + 1e-4) / (100**2 + 150**2 + 1e-4))


def test_relations_between_the_two_script_versions() -> None:
    rng = np.random.default_rng(2)
    a = np.round(cv2.GaussianBlur(rng.random((60, 80)) * 255, (0, 0), 1.5)).astype(np.float32)
    b = np.round(cv2.GaussianBlur(rng.random((60, 80)) * 255, (0, 0), 1.5)).astype(np.float32)
    f = np.maximum(a, b)
    old, new = fusion_metrics(f, a, b, "tang2022"), fusion_metrics(f, a, b, "tang2023")
    for same in ("EN", "MI", "MSE", "PSNR", "AG", "CC", "SCD"):
        assert new[same] == pytest.approx(old[same], rel=1e-9), same
    assert new["SF"] == pytest.approx(255 * old["SF"], rel=1e-12)
    assert new["SD"] == pytest.approx(float(np.std(f.astype(np.float64))), rel=1e-12)  # no uint8 saturation
    assert old["SD"] <= math.sqrt(255) + 1e-9  # saturated squares


def test_tang2022_quirks_by_hand() -> None:
    half = np.zeros((48, 48), np.float32)
    half[:, 24:] = 100  # mean 50: uint8 subtraction clips the lower half to 0, squaring saturates at 255
    assert fusion_metrics(half, half, half, "tang2022")["SD"] == pytest.approx(math.sqrt(255 / 2))
    top = np.array([254, 255] * (48 * 24), np.float32).reshape(48, 48)  # 254/255 share a joint-histogram bin
    assert fusion_metrics(top, top, top, "tang2022")["MI"] == pytest.approx(2 * (1.0 + 1.0 - 0.0))


def test_qabf_depends_on_the_summation_order_where_images_have_exact_ties() -> None:
    """Octave's conv2 order reproduces Octave; another order (OpenCV) moves Qabf by 14 % on blocky images,
    because the scripts branch on exact equality of Sobel sums. MATLAB's own conv2 may order differently."""
    stem = DATA_DIR / "metrics" / "blocks_max"
    f, a, b = (np.asarray(Image.open(f"{stem}_{k}.png"), np.float64) / 255 for k in ("fused", "ir", "vi"))
    kernel = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    ours = conv2_same(a, kernel)
    other = cv2.filter2D(a, cv2.CV_64F, cv2.flip(kernel, -1), borderType=cv2.BORDER_CONSTANT)
    assert np.allclose(ours, other, atol=1e-12) and not np.array_equal(ours == 0, other == 0)


def test_profiles_name_their_source() -> None:
    assert set(PROFILES) == {"cddfuse", "tang2022", "tang2023"}
    assert "53f5542" in profile_source("tang2022") and "2023-03-03" in profile_source("tang2023")
    assert "MMIF-CDDFuse" in profile_source("cddfuse")
