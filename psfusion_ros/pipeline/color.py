"""Colour conversions of the reference test script on channel-last tensors (CPU or GPU), values in [0, 1].

The fused image is the network's luminance with the visible image's chroma: ``Y`` from PSFusion,
``Cr``/``Cb`` from the visible frame, recombined with the reference's inverse matrix. Channel-last
layout lets the result be handed to image messages without another copy.
"""

from __future__ import annotations

import numpy as np
import torch

from psfusion_ros.constants import CB_SCALE, CHROMA_OFFSET, CR_SCALE, LUMA_WEIGHTS, MSRS_PALETTE, YCRCB_TO_RGB


def _chroma(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Y, and Cr - 0.5, Cb - 0.5 after the reference's clamp of Cr/Cb to [0, 1]."""
    r, g, b = rgb.unbind(-1)
    y = r * LUMA_WEIGHTS[0] + g * LUMA_WEIGHTS[1] + b * LUMA_WEIGHTS[2]
    dcr = torch.sub(r, y).mul_(CR_SCALE).add_(CHROMA_OFFSET).clamp_(0.0, 1.0).sub_(CHROMA_OFFSET)
    dcb = torch.sub(b, y).mul_(CB_SCALE).add_(CHROMA_OFFSET).clamp_(0.0, 1.0).sub_(CHROMA_OFFSET)
    return y, dcr, dcb


def _rgb_channels(y: torch.Tensor, dcr: torch.Tensor, dcb: torch.Tensor) -> list[torch.Tensor]:
    """Unclamped R, G, B planes from Y and centred chroma, row by row of ``YCRCB_TO_RGB``."""
    channels = []
    for _, w_cr, w_cb in YCRCB_TO_RGB:
        c = torch.add(y, dcr, alpha=w_cr) if w_cr else y.clone()
        channels.append(c.add_(dcb, alpha=w_cb) if w_cb else c)
    return channels


def rgb_to_ycrcb(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(..., 3) RGB → Y, Cr, Cb, each (...) and clamped to [0, 1] like ``utils.RGB2YCrCb`` (training targets)."""
    y, dcr, dcb = _chroma(rgb)
    return y.clamp_(0.0, 1.0), dcr.add_(CHROMA_OFFSET), dcb.add_(CHROMA_OFFSET)


def fused_rgb_uint8(fused_y: torch.Tensor, visible_rgb: torch.Tensor) -> torch.Tensor:
    """The fused colour image as uint8 (..., 3): the network's Y (...) with the visible image's chroma, back to
    RGB with the reference's ``YCbCr2RGB`` matrix, clamped, ``×255`` and truncated; one pass per plane."""
    _, dcr, dcb = _chroma(visible_rgb)
    planes = _rgb_channels(fused_y.to(dcr.dtype), dcr, dcb)
    return torch.stack([to_uint8(p.clamp_(0.0, 1.0)) for p in planes], dim=-1)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → uint8 by ``×255`` and truncation, as the reference saves images (not rounding)."""
    return image.mul(255.0).to(torch.uint8)


_PALETTE_LUT = np.full((256, 3), 255, np.uint8)  # ids beyond the palette are drawn white
_PALETTE_LUT[: len(MSRS_PALETTE)] = MSRS_PALETTE


def colorize(class_ids: np.ndarray) -> np.ndarray:
    """(H, W) uint8 class ids → (H, W, 3) uint8 RGB with the MSRS palette."""
    return _PALETTE_LUT[class_ids]
