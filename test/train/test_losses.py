"""Each loss term on hand-made tensors, against values worked out by hand or by the definition written out."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from psfusion_ros.constants import BINARY_POS_WEIGHT, CORR_FLOOR, IGNORE_LABEL, OHEM_THRESH
from psfusion_ros.train.losses import (
    binary_loss,
    boundary_loss,
    correlation_term,
    fusion_loss,
    local_mse,
    local_variance,
    ohem_cross_entropy,
    reconstruction_loss,
    second_order_gradient,
    sobel_magnitudes,
)


def _image(seed: int, size: tuple[int, int] = (24, 32)) -> torch.Tensor:
    return torch.rand((1, 1) + size, generator=torch.Generator().manual_seed(seed))


def test_fusion_terms_vanish_when_the_fused_image_is_both_sources() -> None:
    x = _image(0)
    terms = fusion_loss(x.clone(), x, x)
    assert float(terms.intensity) == 0.0 and float(terms.gradient) == 0.0
    # the correlation term cannot vanish: its best value is 1 / (1 + 1)
    assert float(terms.correlation) == pytest.approx(0.5, abs=1e-5)
    assert float(terms.total) == pytest.approx(0.5, abs=1e-5)


def test_reconstruction_is_zero_only_for_the_reference_itself() -> None:
    x = _image(1)
    assert float(reconstruction_loss(x.clone(), x)) == 0.0
    assert float(reconstruction_loss(x + 0.1, x)) == pytest.approx(5 * 0.1, rel=1e-4)  # a shift: no gradient change


def _sobel_abs_numpy(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """|Sobel x|, |Sobel y| written out as sums over the 3x3 neighbourhood (zero outside the image)."""
    p = np.pad(a, 1)
    h, w = a.shape
    n = {(dy, dx): p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    gx = (n[-1, 1] + 2 * n[0, 1] + n[1, 1]) - (n[-1, -1] + 2 * n[0, -1] + n[1, -1])
    gy = (n[-1, -1] + 2 * n[-1, 0] + n[-1, 1]) - (n[1, -1] + 2 * n[1, 0] + n[1, 1])
    return np.abs(gx), np.abs(gy)


def test_gradient_term_asks_for_the_larger_sobel_magnitude_of_the_two_sources() -> None:
    vi = torch.zeros(1, 1, 16, 16)
    ir = torch.zeros(1, 1, 16, 16)
    vi[..., 2:6, 2:5] = 1.0  # two objects far apart: their Sobel responses never overlap
    ir[..., 10:14, 9:14] = 0.5
    assert float(fusion_loss(vi + ir, vi, ir).gradient) == 0.0  # both edges kept, each at its own strength
    ix, iy = _sobel_abs_numpy(ir[0, 0].double().numpy())
    missing_ir = ix.mean() + iy.mean()
    assert float(fusion_loss(vi, vi, ir).gradient) == pytest.approx(missing_ir, rel=1e-6)
    assert float(fusion_loss(vi + 2 * ir, vi, ir).gradient) == pytest.approx(missing_ir, rel=1e-6)  # too strong


def test_sobel_magnitudes_of_a_ramp() -> None:
    ramp = torch.arange(8.0).repeat(8, 1)[None, None]  # f(x, y) = x
    gx, gy = sobel_magnitudes(ramp)
    assert torch.all(gx[..., 1:-1, 1:-1] == 8.0)  # (1 + 2 + 1) * 2 per unit slope
    assert torch.all(gy[..., 1:-1, 1:-1] == 0.0)


@pytest.mark.parametrize(("image", "expected"), [
    (lambda x, y: x * x, 2.0),  # |fxx| = 128/64, fxy = fyy = 0
    (lambda x, y: y * y, 2.0),
    (lambda x, y: x * y, 64.0 / 36.0),  # |fxy| = 64/36 with the 5x5 second-order Sobel normalized by |sum|
])
def test_second_order_gradient_against_hand_worked_kernels(image, expected: float) -> None:
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    out = second_order_gradient(image(x, y)[None, None])
    assert out.shape == (1, 12, 12)
    assert torch.allclose(out[0, 2:-2, 2:-2], torch.full((8, 8), expected), atol=1e-4)


def test_intensity_term_follows_the_source_with_more_local_variance_or_the_mask() -> None:
    rng = np.random.default_rng(3)
    vi = torch.from_numpy(rng.random((1, 1, 12, 14)).astype(np.float32))
    ir = torch.from_numpy(rng.random((1, 1, 12, 14)).astype(np.float32) * 0.3)
    fused = torch.from_numpy(rng.random((1, 1, 12, 14)).astype(np.float32))

    # The definition written out: 9x9 windows, zero padding; Gaussian (sigma 1.5) local variance.
    def windows(a: np.ndarray) -> np.ndarray:
        p = np.pad(a, 4)
        return np.stack([[p[i:i + 9, j:j + 9] for j in range(a.shape[1])] for i in range(a.shape[0])])

    g = np.exp(-((np.arange(9) - 4) ** 2) / (2 * 1.5 ** 2))
    g = np.outer(g, g) / g.sum() ** 2
    v, i, f = (t[0, 0].double().numpy() for t in (vi, ir, fused))
    var = {k: (windows(a * a) * g).sum((2, 3)) - ((windows(a) * g).sum((2, 3))) ** 2 for k, a in (("v", v), ("i", i))}
    mse = {k: (windows((a - f) ** 2)).mean((2, 3)) for k, a in (("v", v), ("i", i))}
    follow_vi = var["v"] > var["i"]
    expected = np.where(follow_vi, mse["v"], mse["i"]).mean()
    assert float(local_variance(vi)[0, 0, 5, 5]) == pytest.approx(var["v"][5, 5], rel=1e-4)
    assert float(local_mse(vi, fused)[0, 0, 0, 0]) == pytest.approx(mse["v"][0, 0], rel=1e-5)
    assert float(fusion_loss(fused, vi, ir).intensity) == pytest.approx(expected, rel=1e-5)
    assert 0 < follow_vi.mean() < 1 or follow_vi.all()  # the case exercises the selection
    everywhere = torch.ones_like(vi)
    assert float(fusion_loss(fused, vi, ir, everywhere).intensity) == pytest.approx(mse["v"].mean(), rel=1e-5)


def test_correlation_term_is_the_reference_above_the_floor_and_keeps_falling_below() -> None:
    c = torch.tensor([1.5, 1.0, CORR_FLOOR, CORR_FLOOR - 0.2, 0.0, -0.5])
    term = correlation_term(c, eps=0.0)
    assert torch.allclose(term[:3], 1.0 / c[:3])
    assert torch.all(term[2:-1] < term[3:])  # lower correlation always costs more (the reference's 1/c does not)
    slope = (term[3] - term[2]) / (c[3] - c[2])
    assert float(slope) == pytest.approx(-1.0 / CORR_FLOOR ** 2, rel=1e-5)  # tangent at the floor: no kink
    c_grad = torch.tensor(-0.3, requires_grad=True)
    correlation_term(c_grad).backward()
    assert float(c_grad.grad) < 0  # minimizing raises the correlation from anywhere


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per-pixel cross-entropy written out: log-sum-exp minus the true class's logit."""
    z = logits.double().numpy()
    y = labels.numpy()
    lse = np.log(np.exp(z).sum(1))
    true = np.take_along_axis(z, y[:, None].clip(0, z.shape[1] - 1), 1)[:, 0]
    return np.where(y == IGNORE_LABEL, -1.0, lse - true).ravel()


def test_ohem_takes_every_hard_pixel_when_there_are_enough() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8) * 3
    labels = torch.randint(0, 4, (2, 8, 8))
    losses = _ce(logits, labels)
    hard = losses[losses > -math.log(OHEM_THRESH)]
    assert hard.size > 0.25 * losses.size  # enough hard pixels: all of them, no more
    assert float(ohem_cross_entropy(logits, labels)) == pytest.approx(hard.mean(), rel=1e-5)


def test_ohem_takes_the_hardest_quarter_when_few_pixels_are_hard() -> None:
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    logits = torch.zeros(1, 3, 8, 8)
    logits[:, 0] = 8.0  # almost every pixel confidently right ...
    logits[0, 0, :2, :] = -4.0  # ... 16 pixels wrong, with losses growing along the row
    logits[0, 1, :2, :] = torch.arange(16.0).reshape(2, 8) / 4
    losses = np.sort(_ce(logits, labels))[::-1]
    n_min = 16  # a quarter of 64 pixels
    assert (losses > -math.log(OHEM_THRESH)).sum() == 16  # exactly as many hard pixels as the minimum
    assert float(ohem_cross_entropy(logits, labels)) == pytest.approx(losses[:n_min].mean(), rel=1e-5)
    logits[0, 0, 1, :] = 8.0  # now only 8 are hard: the 16 hardest still count
    losses = np.sort(_ce(logits, labels))[::-1]
    assert float(ohem_cross_entropy(logits, labels)) == pytest.approx(losses[:n_min].mean(), rel=1e-5)


def test_ohem_never_counts_ignored_pixels() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 6, 6) * 4
    labels = torch.randint(0, 3, (1, 6, 6))
    ignored = labels.clone()
    ignored[0, :3] = IGNORE_LABEL
    losses = _ce(logits, ignored)
    kept = losses[losses >= 0]
    hard = kept[kept > -math.log(OHEM_THRESH)]
    expected = hard.mean() if hard.size > 9 else np.sort(kept)[::-1][:9].mean()
    assert float(ohem_cross_entropy(logits, ignored)) == pytest.approx(expected, rel=1e-5)


def test_binary_loss_weights_the_foreground_as_the_reference() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 2, 5, 5)
    target = torch.randint(0, 2, (2, 5, 5))
    x = logits.double().numpy()
    y = np.stack([(target == 0), (target == 1)], 1).astype(np.float64)
    w = np.array(BINARY_POS_WEIGHT).reshape(1, 2, 1, 1)
    sig = 1 / (1 + np.exp(-x))
    expected = -(w * y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean()
    assert float(binary_loss(logits, target)) == pytest.approx(expected, rel=1e-5)
    unweighted = -(y * np.log(sig) + (1 - y) * np.log(1 - sig)).mean()
    assert float(boundary_loss(logits, target)) == pytest.approx(unweighted, rel=1e-5)
    assert float(F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y).float())) == pytest.approx(
        unweighted, rel=1e-5)
