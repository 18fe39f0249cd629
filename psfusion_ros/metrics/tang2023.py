"""The ``tang2023`` profile: the MATLAB evaluation scripts of Linfeng-Tang/Image-Fusion
(``General Evaluation Metric/Evaluation``, ``analysis_Reference.m``), reproduced with their quirks, because
published PSFusion/SeAFusion tables were computed with them:

* images are uint8 (``imread``); EN, SD, AG, MI, VIF use them as such, SF/MSE/PSNR/CC/SCD/Qabf use
  ``im2double`` ([0, 1]);
* MI is in bits; its joint histogram indexes ``uint8 + 1``, which saturates, so grey levels 254 and 255
  share a bin (the marginal entropies keep 256 bins);
* SD subtracts the mean from a uint8 image, and squares in uint8: both saturate (SD ≤ √255);
* AG divides the sum of gradients by (H−1)(W−1), not H·W;
* CC's second correlation centres the visible image with the infrared image's mean;
* PSNR is 20·log10(255/√MSE) on [0, 1] images; VIF's first scale squares uint8 images (saturating at 255);
* SSIM is MEF-SSIM (Ma et al., ``mef_ssim.m``) of the fused image against the {ir, vis} sequence, with an
  11x11 Gaussian (σ 1.5) window and K = 0.03.

Vectorized: local sums replace the per-pixel loops (same formulas, floating-point order differs).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from psfusion_ros.metrics.fusion import _valid_filter, vif_scales, vif_terms

MATLAB_EPS = np.finfo(np.float64).eps


def _entropy_bits(img: np.ndarray) -> float:
    p = np.bincount(img.ravel(), minlength=256) / img.size
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def _joint_entropy_saturated(a: np.ndarray, b: np.ndarray) -> float:
    """``Hab.m``: indices ``uint8 + 1`` saturate at 255, so levels 254 and 255 fall in one bin."""
    ia = np.minimum(a.astype(np.int64), 254)
    ib = np.minimum(b.astype(np.int64), 254)
    counts = np.bincount((ia * 256 + ib).ravel(), minlength=256 * 256)
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _uint8_saturate(x: np.ndarray) -> np.ndarray:
    """What MATLAB stores when a double result is assigned to uint8: rounded, clipped to 0..255."""
    return np.clip(_round_half_away(x), 0, 255)


def _sd(f: np.ndarray) -> float:
    diff = _uint8_saturate(f.astype(np.float64) - f.mean())  # uint8 - double → uint8
    return float(np.sqrt(np.sum(_uint8_saturate(diff * diff)) / f.size))  # .^2 in uint8


def _gradient(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``gradient``: central differences inside, one-sided at the borders."""
    return np.gradient(img, axis=1), np.gradient(img, axis=0)


def _corr2(a: np.ndarray, b: np.ndarray) -> float:
    da, db = a - a.mean(), b - b.mean()
    return float(np.sum(da * db) / np.sqrt(np.sum(da * da) * np.sum(db * db)))


def _vifp_uint8(ref: np.ndarray, dist: np.ndarray) -> float:
    """``vifp_mscale.m`` with uint8 inputs: at scale 1 the products ``ref.*ref`` etc. saturate at 255."""
    num = den = np.float64(0.0)
    for scale, k, (r, d) in vif_scales((ref, dist)):
        def product(x: np.ndarray, y: np.ndarray, first: bool = scale == 1) -> np.ndarray:
            return np.minimum(x * y, 255.0) if first else x * y  # uint8 .* uint8 saturates

        mu1, mu2 = _valid_filter(r, k), _valid_filter(d, k)
        n, m = vif_terms(_valid_filter(product(r, r), k) - mu1 * mu1, _valid_filter(product(d, d), k) - mu2 * mu2,
                         _valid_filter(product(r, d), k) - mu1 * mu2)
        num += n
        den += m
    return float(num / den)


def _qabf_double(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """``analysis_Qabf.m`` on [0, 1] doubles (note GAF = gF where gA == gF, as written there)."""
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)

    def edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sx = cv2.filter2D(img, cv2.CV_64F, cv2.flip(h3, -1), borderType=cv2.BORDER_CONSTANT)
        sy = cv2.filter2D(img, cv2.CV_64F, cv2.flip(h1, -1), borderType=cv2.BORDER_CONSTANT)
        nz = sx != 0
        angle = np.arctan(np.divide(sy, sx, out=np.zeros_like(sy), where=nz))
        angle[~nz] = math.pi / 2
        return np.sqrt(sx * sx + sy * sy), angle

    (ga, aa), (gb, ab), (gf, af) = edges(a), edges(b), edges(f)

    def preservation(g: np.ndarray, ang: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            gx = np.where(g > gf, gf / g, np.where(g == gf, gf, g / gf))
        ax = 1 - np.abs(ang - af) / (math.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (gx - 0.5))) * (0.9879 / (1 + np.exp(-22 * (ax - 0.8))))

    return float(np.sum(preservation(ga, aa) * ga + preservation(gb, ab) * gb) / np.sum(ga + gb))


def _mef_ssim(sources: tuple[np.ndarray, ...], fused: np.ndarray, k_const: float = 0.03) -> float:
    """``mef_ssim.m`` (11x11 windows) with window sums instead of per-pixel loops."""
    w = 11
    n = w * w
    sources = tuple(s.astype(np.float64) for s in sources)
    f = fused.astype(np.float64)
    gauss = cv2.getGaussianKernel(w, 1.5, cv2.CV_64F).ravel()

    def box(x: np.ndarray) -> np.ndarray:  # mean over each valid 11x11 window
        return _valid_filter(x, np.full(w, 1.0 / w))

    def gmean(x: np.ndarray) -> np.ndarray:  # Gaussian-weighted mean over each valid window
        return _valid_filter(x, gauss)

    mu = [box(s) for s in sources]
    ed = [np.sqrt(np.maximum(n * (box(s * s) - m * m), 0)) + 0.001 for s, m in zip(sources, mu)]
    total = sum(sources)
    numerator = np.sqrt(np.maximum(n * (box(total * total) - box(total) ** 2), 0))
    denominator = sum(np.sqrt(np.maximum(n * (box(s * s) - m * m), 0)) for s, m in zip(sources, mu))
    r = (numerator + MATLAB_EPS) / (denominator + MATLAB_EPS)
    r[r > 1] = 1 - MATLAB_EPS
    r[r < 0] = MATLAB_EPS
    p = np.minimum(np.tan(math.pi / 2 * r), 10)
    weights = [(e / w) ** p + MATLAB_EPS for e in ed]
    norm = sum(weights)
    coef = [wt / norm / e for wt, e in zip(weights, ed)]  # rBlock = Σ coef_k (block_k − mu_k)
    max_ed = np.maximum.reduce(ed)

    # ‖rBlock‖² from window sums of centred products (uniform window, the blocks' own means).
    def box_cov(x: np.ndarray, mx: np.ndarray, y: np.ndarray, my: np.ndarray) -> np.ndarray:
        return n * (box(x * y) - mx * my)

    r_norm_sq = sum(coef[i] * coef[j] * box_cov(sources[i], mu[i], sources[j], mu[j])
                    for i in range(len(sources)) for j in range(len(sources)))
    r_norm = np.sqrt(np.maximum(r_norm_sq, 0))
    scale = np.where(r_norm > 0, max_ed / np.where(r_norm > 0, r_norm, 1), 1.0)

    # Gaussian-weighted moments of r = scale · Σ coef_k (x_k − mu_k) and of the fused block.
    g_mean = [gmean(s) for s in sources]
    g_f = gmean(f)

    def g_cov(x: np.ndarray, gx: np.ndarray, y: np.ndarray, gy: np.ndarray) -> np.ndarray:
        return gmean(x * y) - gx * gy

    sigma1 = scale**2 * sum(coef[i] * coef[j] * g_cov(sources[i], g_mean[i], sources[j], g_mean[j])
                            for i in range(len(sources)) for j in range(len(sources)))
    sigma2 = g_cov(f, g_f, f, g_f)
    sigma12 = scale * sum(coef[i] * g_cov(sources[i], g_mean[i], f, g_f) for i in range(len(sources)))
    c = (k_const * 255) ** 2
    return float(np.mean((2 * sigma12 + c) / (sigma1 + sigma2 + c)))


def tang2023_metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``f`` fused, ``a`` infrared, ``b`` visible: 2-D arrays in 0..255 (treated as the uint8 images read)."""
    f8, a8, b8 = (np.clip(_round_half_away(x.astype(np.float64)), 0, 255).astype(np.uint8) for x in (f, a, b))
    fd, ad, bd = (x.astype(np.float64) / 255.0 for x in (f8, a8, b8))
    h, w = f8.shape
    mse = 0.5 * np.mean((fd - ad) ** 2) + 0.5 * np.mean((fd - bd) ** 2)
    gx, gy = _gradient(f8.astype(np.float64))
    hf = _entropy_bits(f8)
    cc_a = _corr2(ad, fd)
    db = bd - ad.mean()  # (sic) the script centres the visible image with the infrared mean
    cc_b = float(np.sum(db * (fd - fd.mean())) / np.sqrt(np.sum((bd - bd.mean()) ** 2) * np.sum((fd - fd.mean()) ** 2)))
    rows, cols = np.diff(fd, axis=0), np.diff(fd, axis=1)
    return {
        "EN": hf,
        "SD": _sd(f8),
        "SF": float(np.sqrt(np.mean(rows**2) + np.mean(cols**2))),
        "AG": float(np.sum(np.sqrt((gx**2 + gy**2) / 2)) / ((h - 1) * (w - 1))),
        "MI": (_entropy_bits(a8) + hf - _joint_entropy_saturated(f8, a8))
        + (_entropy_bits(b8) + hf - _joint_entropy_saturated(f8, b8)),
        "MSE": float(mse),
        "CC": (cc_a + cc_b) / 2,
        "PSNR": float(20 * np.log10(255 / np.sqrt(mse))),
        "SCD": _corr2(fd - bd, ad) + _corr2(fd - ad, bd),
        "VIF": _vifp_uint8(a8, f8) + _vifp_uint8(b8, f8),
        "Qabf": _qabf_double(ad, bd, fd),
        "SSIM": _mef_ssim((a8, b8), f8),
    }
