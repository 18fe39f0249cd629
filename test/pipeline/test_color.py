"""Colour conversions against values computed by hand from the reference's formulas."""

from __future__ import annotations

import torch

from psfusion_ros.pipeline.color import fuse_luminance, rgb_to_ycrcb, to_uint8, ycrcb_to_rgb


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
    # Out-of-gamut input: Cr = (1 - 0.299 * 1 - 0.587 * -1 ...) would exceed 1; the reference clamps.
    _, cr, cb = rgb_to_ycrcb(_px(1.0, -0.5, 0.0))
    assert cr.item() == 1.0 and 0.0 <= cb.item() <= 1.0


def test_ycrcb_to_rgb_hand_values() -> None:
    # Y=.5, Cr=.6, Cb=.4: R = .5 + 1.403*.1 = .6403; G = .5 - .714*.1 - .344*(-.1) = .463; B = .5 - .1773 = .3227
    rgb = ycrcb_to_rgb(*(torch.tensor(v, dtype=torch.float64).view(1, 1) for v in (0.5, 0.6, 0.4)))
    torch.testing.assert_close(rgb.flatten(), torch.tensor([0.6403, 0.463, 0.3227], dtype=torch.float64))


def test_grey_visible_gives_grey_fused_image_with_network_luma() -> None:
    grey = torch.full((4, 5, 3), 0.3)
    fused_y = torch.linspace(0, 1, 20).view(4, 5)
    rgb = fuse_luminance(fused_y, grey)
    for c in range(3):
        torch.testing.assert_close(rgb[..., c], fused_y, atol=1e-6, rtol=0)


def test_round_trip_within_reference_matrix_precision() -> None:
    torch.manual_seed(0)
    rgb = torch.rand(8, 8, 3, dtype=torch.float64) * 0.8 + 0.1
    back = ycrcb_to_rgb(*rgb_to_ycrcb(rgb))
    assert (back - rgb).abs().max() < 2e-3  # the reference's rounded coefficients are not exact inverses


def test_to_uint8_truncates_instead_of_rounding() -> None:
    values = torch.tensor([0.0, 0.999 / 255, 1.999 / 255, 0.9999, 1.0])
    assert to_uint8(values).tolist() == [0, 0, 1, 254, 255]
