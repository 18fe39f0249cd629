"""Colour conversions of the reference test script, on tensors (CPU or GPU), values in [0, 1].

The fused image is the network's luminance with the visible image's chroma: ``Y`` from PSFusion,
``Cr``/``Cb`` from the visible frame, recombined with the reference's inverse matrix.
"""

from __future__ import annotations

import torch

from psfusion_ros.constants import CB_SCALE, CHROMA_OFFSET, CR_SCALE, LUMA_WEIGHTS, YCRCB_TO_RGB


def rgb_to_ycrcb(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B,3,H,W) RGB → Y, Cr, Cb, each (B,1,H,W) and clamped to [0, 1] like ``utils.RGB2YCrCb``."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    y = LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b
    cr = (r - y) * CR_SCALE + CHROMA_OFFSET
    cb = (b - y) * CB_SCALE + CHROMA_OFFSET
    return y.clamp(0.0, 1.0), cr.clamp(0.0, 1.0), cb.clamp(0.0, 1.0)


def ycrcb_to_rgb(y: torch.Tensor, cr: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """Y, Cr, Cb (B,1,H,W) → (B,3,H,W) RGB clamped to [0, 1], the matrix of ``utils.YCbCr2RGB``."""
    ycrcb = torch.cat([y, cr - CHROMA_OFFSET, cb - CHROMA_OFFSET], dim=1)
    matrix = torch.tensor(YCRCB_TO_RGB, dtype=ycrcb.dtype, device=ycrcb.device)
    return torch.einsum("oc,bchw->bohw", matrix, ycrcb).clamp(0.0, 1.0)


def fuse_luminance(fused_y: torch.Tensor, visible_rgb: torch.Tensor) -> torch.Tensor:
    """Colour fused image: the network's Y with the visible image's chroma (RGB in [0, 1])."""
    _, cr, cb = rgb_to_ycrcb(visible_rgb)
    return ycrcb_to_rgb(fused_y.to(cr.dtype), cr, cb)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → uint8 by ``×255`` and truncation, as the reference saves images (not rounding)."""
    return (image * 255.0).to(torch.uint8)
