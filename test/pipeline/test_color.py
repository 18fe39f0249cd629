"""Colour conversions against the reference's formulas, transcribed here independently in numpy."""

from __future__ import annotations

import numpy as np
import torch

from psfusion_ros.pipeline.color import colorize, fused_rgb_uint8, rgb_to_ycrcb, to_uint8


def _reference_fused(y: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """utils.RGB2YCrCb on the visible image, the network's Y, utils.YCbCr2RGB, clamp, x255, truncate."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    cr = np.clip((r - luma) * 0.713 + 0.5, 0, 1)
    cb = np.clip((b - luma) * 0.564 + 0.5, 0, 1)
    out = np.stack([y + 1.403 * (cr - 0.5), y - 0.714 * (cr - 0.5) - 0.344 * (cb - 0.5), y + 1.773 * (cb - 0.5)], -1)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def _px(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float64).view(1, 1, 3)


def test_rgb_to_ycrcb_hand_values() -> None:
    # Pure red: Y = .299, Cr = (1 - .299) * .713 + .5 = 0.999813, Cb = (0 - .299) * .564 + .5 = 0.331364
    y, cr, cb = rgb_to_ycrcb(_px(1, 0, 0))
    assert abs(y.item() - 0.299) < 1e-12
    assert abs(cr.item() - 0.999813) < 1e-12
    assert abs(cb.item() - 0.331364) < 1e-12
    # Pure blue: Cb = (1 - .114) * .564 + .5 = 0.999704; Cr = (0 - .114) * .713 + .5 = 0.418718
    y, cr, cb = rgb_to_ycrcb(_px(0, 0, 1))
    assert abs(cb.item() - 0.999704) < 1e-12 and abs(cr.item() - 0.418718) < 1e-12


def test_chroma_is_clamped_like_the_reference() -> None:
    _, cr, cb = rgb_to_ycrcb(_px(1.0, -0.5, 0.0))  # out of gamut: Cr would exceed 1
    assert cr.item() == 1.0 and 0.0 <= cb.item() <= 1.0


def test_fused_image_matches_the_reference_formulas() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.random((40, 50, 3))
    y = rng.random((40, 50))
    ours = fused_rgb_uint8(torch.from_numpy(y), torch.from_numpy(rgb)).numpy()
    expected = _reference_fused(y, rgb)
    assert ours.dtype == np.uint8 and ours.shape == (40, 50, 3)
    assert np.array_equal(ours, expected)


def test_grey_visible_gives_grey_fused_image_with_network_luma() -> None:
    grey = torch.full((4, 5, 3), 0.3, dtype=torch.float64)
    fused_y = torch.linspace(0, 1, 20, dtype=torch.float64).view(4, 5)
    rgb = fused_rgb_uint8(fused_y, grey)
    for c in range(3):
        assert torch.equal(rgb[..., c], to_uint8(fused_y))


def test_visible_luma_as_fused_y_gives_back_the_visible_image() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.random((8, 8, 3)) * 0.8 + 0.1
    y, _, _ = rgb_to_ycrcb(torch.from_numpy(rgb))
    back = fused_rgb_uint8(y, torch.from_numpy(rgb)).numpy().astype(int)
    assert np.abs(back - (rgb * 255).astype(int)).max() <= 1  # the reference's rounded coefficients


def test_to_uint8_truncates_instead_of_rounding() -> None:
    values = torch.tensor([0.0, 0.999 / 255, 1.999 / 255, 0.9999, 1.0])
    assert to_uint8(values).tolist() == [0, 0, 1, 254, 255]


def test_palette_colours_and_unknown_ids() -> None:
    ids = np.array([[0, 1, 2], [8, 9, 255]], np.uint8)
    colour = colorize(ids)
    assert colour[0, 1].tolist() == [64, 0, 128] and colour[0, 2].tolist() == [64, 64, 0]
    assert colour[1, 0].tolist() == [192, 64, 0]
    assert colour[1, 1].tolist() == colour[1, 2].tolist() == [255, 255, 255]  # beyond the palette: white
