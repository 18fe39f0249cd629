"""The paper's training objective (reference ``train.py``, ``losses.py``, ``Fusion_losses.py``), term by term.

    total = 10·OHEM-CE(semantic) + 10·BCE(binary, weighted) + 10·BCE(boundary)          (task "full" only)
          + fusion(fused, visible Y, infrared) + reconstruction(vi) + reconstruction(ir)

fusion = 1·1/(corr(F, Y) + corr(F, IR)) + 10·gradient + 10·intensity. Below ``CORR_FLOOR`` the correlation term
goes on along its tangent, our one change: the reference's 1/c has no minimum, and training from scratch diverged.
The gradient term asks the fused Sobel magnitudes to equal the larger of the two sources'; the intensity term asks
the fused image to follow, window by window, the source with the larger local variance, or the visible luminance
where ``mask`` is set (the reference passes the visible Y as its first argument; the behaviour is kept, the names
here say what happens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from psfusion_ros.constants import (
    BINARY_POS_WEIGHT,
    BINARY_WEIGHT,
    BOUNDARY_WEIGHT,
    CORR_FLOOR,
    FUSION_CORR_WEIGHT,
    FUSION_GRAD_WEIGHT,
    FUSION_INTENSITY_WEIGHT,
    IGNORE_LABEL,
    LOCAL_SIGMA,
    LOCAL_WINDOW,
    OHEM_MIN_FRACTION,
    OHEM_THRESH,
    RECON_GRAD_WEIGHT,
    RECON_INTENSITY_WEIGHT,
    SEG_WEIGHT,
)
from psfusion_ros.model.psfusion import PSFusionOutput

_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]])
_GXX = torch.tensor([[-1.0, 0.0, 2.0, 0.0, -1.0], [-4.0, 0.0, 8.0, 0.0, -4.0], [-6.0, 0.0, 12.0, 0.0, -6.0],
                     [-4.0, 0.0, 8.0, 0.0, -4.0], [-1.0, 0.0, 2.0, 0.0, -1.0]])
_GXY = torch.tensor([[-1.0, -2.0, 0.0, 2.0, 1.0], [-2.0, -4.0, 0.0, 4.0, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0],
                     [2.0, 4.0, 0.0, -4.0, -2.0], [1.0, 2.0, 0.0, -2.0, -1.0]])
#: 2nd-order Sobel (xx, xy, yy), each normalized by its absolute sum (what kornia's spatial_gradient(order=2) uses)
_SECOND_ORDER = torch.stack([k / k.abs().sum() for k in (_GXX, _GXY, _GXX.T)])[:, None]


def ohem_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, thresh: float = OHEM_THRESH,
                       min_fraction: float = OHEM_MIN_FRACTION) -> torch.Tensor:
    """Cross-entropy over the hard pixels: every pixel whose loss exceeds -log(thresh), or the hardest
    ``min_fraction`` of the batch's pixels when fewer are that hard (ignored labels never count)."""
    loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_LABEL, reduction="none").reshape(-1)
    loss, _ = torch.sort(loss, descending=True)
    n_min = max(1, min(int(loss.numel() * min_fraction), loss.numel() - 1))
    limit = -torch.log(torch.tensor(thresh, device=loss.device))
    return loss[loss > limit].mean() if loss[n_min] > limit else loss[:n_min].mean()


def binary_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE of the (background, foreground) head against the one-hot target, foreground weighted ~20x."""
    weight = torch.tensor(BINARY_POS_WEIGHT, device=logits.device).view(1, 2, 1, 1)
    one_hot = F.one_hot(target, 2).permute(0, 3, 1, 2).float()
    return F.binary_cross_entropy_with_logits(logits.float(), one_hot, pos_weight=weight)


def boundary_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    one_hot = F.one_hot(target, 2).permute(0, 3, 1, 2).float()
    return F.binary_cross_entropy_with_logits(logits.float(), one_hot)


def sobel_magnitudes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|Sobel x| and |Sobel y| (zero padding)."""
    kx, ky = (k.to(x)[None, None] for k in (_SOBEL_X, _SOBEL_Y))
    return F.conv2d(x, kx, padding=1).abs(), F.conv2d(x, ky, padding=1).abs()


def second_order_gradient(x: torch.Tensor) -> torch.Tensor:
    """Sum of |xx|, |xy|, |yy| second derivatives (replicate padding), per pixel: (B, H, W)."""
    padded = F.pad(x, (2, 2, 2, 2), mode="replicate")
    return F.conv2d(padded, _SECOND_ORDER.to(x)).abs().sum(dim=1)


def _gaussian_window(size: int = LOCAL_WINDOW, sigma: float = LOCAL_SIGMA) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    g = g / g.sum()
    return torch.outer(g, g).float()[None, None]


def local_variance(x: torch.Tensor, size: int = LOCAL_WINDOW) -> torch.Tensor:
    window = _gaussian_window(size).to(x)
    mu = F.conv2d(x, window, padding=size // 2)
    return F.conv2d(x * x, window, padding=size // 2) - mu * mu


def local_mse(a: torch.Tensor, b: torch.Tensor, size: int = LOCAL_WINDOW) -> torch.Tensor:
    """Mean squared difference over each size x size window (zero padding), per pixel."""
    return F.avg_pool2d((a - b) ** 2, size, stride=1, padding=size // 2, count_include_pad=True)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation over the whole batch (as the reference computes it); 0 for a constant image (the
    reference divides 0 by 0 there)."""
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum()).clamp(min=1e-12)


def correlation_term(c: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """1/(c + eps) for c >= CORR_FLOOR; below, its tangent at the floor, so lower c always costs more."""
    at_floor = 1.0 / (CORR_FLOOR + eps)
    return torch.where(c >= CORR_FLOOR, 1.0 / (c.clamp(min=CORR_FLOOR) + eps),
                       at_floor + (CORR_FLOOR - c) * at_floor * at_floor)


@dataclass
class FusionTerms:
    total: torch.Tensor
    intensity: torch.Tensor
    gradient: torch.Tensor
    correlation: torch.Tensor


def fusion_loss(fused: torch.Tensor, visible_y: torch.Tensor, infrared: torch.Tensor,
                mask: torch.Tensor | None = None, eps: float = 1e-6) -> FusionTerms:
    vx, vy = sobel_magnitudes(visible_y)
    ix, iy = sobel_magnitudes(infrared)
    fx, fy = sobel_magnitudes(fused)
    gradient = F.l1_loss(torch.maximum(vx, ix), fx) + F.l1_loss(torch.maximum(vy, iy), fy)
    corr = correlation_term(correlation(visible_y, fused) + correlation(infrared, fused), eps)
    follow_visible = local_variance(visible_y) > local_variance(infrared)
    if mask is not None:
        follow_visible = follow_visible | (mask > 0)
    follow_visible = follow_visible.float()
    intensity = (follow_visible * local_mse(visible_y, fused)
                 + (1 - follow_visible) * local_mse(infrared, fused)).mean()
    total = FUSION_CORR_WEIGHT * corr + FUSION_GRAD_WEIGHT * gradient + FUSION_INTENSITY_WEIGHT * intensity
    return FusionTerms(total, intensity, gradient, corr)


def reconstruction_loss(reconstructed: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return (RECON_INTENSITY_WEIGHT * F.l1_loss(reconstructed, reference)
            + RECON_GRAD_WEIGHT * F.l1_loss(second_order_gradient(reconstructed), second_order_gradient(reference)))


def training_loss(out: PSFusionOutput, visible_y: torch.Tensor, infrared: torch.Tensor, mask: torch.Tensor | None,
                  label: torch.Tensor | None = None, binary: torch.Tensor | None = None,
                  boundary: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss and each term (floats, for logs and history). Without ``label`` (fusion-only training) the
    semantic terms are left out."""
    fused = out.fused.float()
    fusion = fusion_loss(fused, visible_y, infrared, mask)
    vi_rec = reconstruction_loss(out.vi.float(), visible_y)
    ir_rec = reconstruction_loss(out.ir.float(), infrared)
    total = fusion.total + vi_rec + ir_rec
    terms = {"fusion": fusion.total, "fusion_intensity": fusion.intensity, "fusion_gradient": fusion.gradient,
             "fusion_correlation": fusion.correlation, "vi_reconstruction": vi_rec, "ir_reconstruction": ir_rec}
    if label is not None:
        seg = ohem_cross_entropy(out.semantic, label)
        bi = binary_loss(out.binary, binary)
        bd = boundary_loss(out.boundary, boundary)
        total = total + SEG_WEIGHT * seg + BINARY_WEIGHT * bi + BOUNDARY_WEIGHT * bd
        terms.update(segmentation=seg, binary=bi, boundary=bd)
    return total, {k: float(v.detach()) for k, v in terms.items()}
