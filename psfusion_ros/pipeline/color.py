"""Colour conversions of the reference test script on channel-last tensors (CPU or GPU), values in [0, 1].

The fused image is the network's luminance with the visible image's chroma: ``Y`` from PSFusion,
``Cr``/``Cb`` from the visible frame, recombined with the reference's inverse matrix. Channel-last
layout lets the result be handed to image messages without another copy.
"""

from __future__ import annotations

import numpy as np
import torch

from psfusion_ros.constants import CB_SCALE, CHROMA_OFFSET, CR_SCALE, LUMA_WEIGHTS, MSRS_PALETTE, YCRCB_TO_RGB


def rgb_to_ycrcb(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., 3) RGB → Y, Cr, Cb, each (...) and clamped to [0, 1] like ``utils.RGB2YCrCb``."""
    r, g, b = rgb.unbind(-1)
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    cr = ((r - y) * CR_SCALE + CHROMA_OFFSET).clamp_(0.0, 1.0)
    cb = ((b - y) * CB_SCALE + CHROMA_OFFSET).clamp_(0.0, 1.0)
    return y.clamp_(0.0, 1.0), cr, cb


def ycrcb_to_rgb(y: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """Y, Cr, Cb (...) → (..., 3) RGB clamped to [0, 1], with the matrix of ``utils.YCbCr2RGB``."""
    dcr, dcb = cr - CHROMA_OFFSET, cb - CHROMA_OFFSET
    channels = [y + row[1] * dcr + row[2] * dcb if row[2] else y + row[1] * dcr for row in YCRCB_TO_RGB]
    return torch.stack(channels, dim=-1).clamp_(0.0, 1.0)


def fuse_luminance(fused_y: torch.Tensor, visible_rgb: torch.Tensor) -> torch.Tensor:
    """Colour fused image (..., 3): the network's Y (...) with the visible image's chroma."""
    _, cr, cb = rgb_to_ycrcb(visible_rgb)
    return ycrcb_to_rgb(fused_y.to(cr.dtype), cr, cb)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → uint8 by ``×255`` and truncation, as the reference saves images (not rounding)."""
    return (image * 255.0).to(torch.uint8)


_PALETTE_LUT = np.full((256, 3), 255, np.uint8)  # ids beyond the palette are drawn white
_PALETTE_LUT[: len(MSRS_PALETTE)] = MSRS_PALETTE


def colorize(class_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids → (H, W, 3) uint8 RGB with the MSRS palette."""
    return _PALETTE_LUT[class_ids]
