"""The ``tang2022`` profile: the MATLAB scripts of Linfeng-Tang/Image-Fusion at commit ``53f5542`` (2022-05-02),
``analysis_Reference.m`` run with ``easy = 1`` for EN..Qabf and ``easy = 0`` for SSIM, quirks included, because the
SeAFusion/PSFusion-era tables were computed with them:

* images are uint8 (``imread``); EN, SD, AG, MI and VIF use them as such, SF/MSE/PSNR/CC/SCD/Qabf use
  ``im2double`` ([0, 1]);
* MI is in bits; its joint histogram indexes ``uint8 + 1``, which saturates, so grey levels 254 and 255 share a bin;
* SD subtracts the mean from a uint8 image and squares in uint8: both saturate (SD ≤ √255 ≈ 16);
* AG divides by (H−1)(W−1); CC's second correlation centres the visible image with the infrared mean;
* VIF's first scale squares uint8 images (saturating at 255);
* SSIM is MEF-SSIM (Ma et al., ``mef_ssim.m``) of the fused image against the {ir, vis} sequence, with an
  11x11 Gaussian (σ 1.5) window and K = 0.03.

Vectorized: window sums replace the per-pixel loops (same formulas, floating-point order differs).
"""

from __future__ import annotations

import math

import numpy as np

from psfusion_ros.metrics.common import (
    correlation,
    entropy_bits,
    gaussian_window,
    mean_squared_error,
    qabf,
    spatial_frequency,
    valid_filter,
    vif_fractions,
)
from psfusion_ros.metrics.matlab import (
    REPOSITORY,
    as_uint8,
    average_gradient,
    cc_evaluation,
    conv2_same,
    im2double,
    mutual_information_bits,
    psnr_from_unit_mse,
    uint8_saturate,
)

SOURCE = f"{REPOSITORY} at commit 53f5542 (2022-05-02)"
MATLAB_EPS = np.finfo(np.float64).eps


def _sd_uint8(f8: np.ndarray) -> float:
    diff = uint8_saturate(f8.astype(np.float64) - f8.mean())  # uint8 - double → uint8
    return float(np.sqrt(np.sum(uint8_saturate(diff * diff)) / f8.size))  # .^2 in uint8, summed as double


def _saturating_product(x: np.ndarray, y: np.ndarray, scale: int) -> np.ndarray:
    return np.minimum(x * y, 255.0) if scale == 1 else x * y  # uint8 .* uint8 saturates; later scales are double


def mef_ssim(sources: tuple[np.ndarray, ...], fused: np.ndarray, k_const: float = 0.03) -> float:
    """``mef_ssim.m`` (11x11 windows) with window sums instead of per-pixel loops."""
    w = 11
    n = w * w
    sources = tuple(s.astype(np.float64) for s in sources)
    f = fused.astype(np.float64)
    gauss = gaussian_window(w, 1.5)

    def box(x: np.ndarray) -> np.ndarray:  # mean over each valid 11x11 window
        return valid_filter(x, np.full(w, 1.0 / w))

    def gmean(x: np.ndarray) -> np.ndarray:  # Gaussian-weighted mean over each valid window
        return valid_filter(x, gauss)

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


def metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``f`` fused, ``a`` infrared, ``b`` visible: 2-D arrays in 0..255 (taken as the uint8 images read)."""
    f8, a8, b8 = as_uint8(f), as_uint8(a), as_uint8(b)
    fd, ad, bd = im2double(f8), im2double(a8), im2double(b8)
    mse = float(mean_squared_error(fd, ad, bd))
    a64, b64, f64 = (x.astype(np.float64) for x in (a8, b8, f8))
    return {
        "EN": entropy_bits(f8),
        "SD": _sd_uint8(f8),
        "SF": spatial_frequency(fd),
        "AG": average_gradient(f8),
        "MI": mutual_information_bits(f8, a8, b8),
        "MSE": mse,
        "CC": cc_evaluation(ad, bd, fd),
        "PSNR": psnr_from_unit_mse(mse),
        "SCD": float(correlation(fd - bd, ad) + correlation(fd - ad, bd)),
        "VIF": sum(vif_fractions((a64, b64), f64, _saturating_product)),
        "Qabf": qabf(fd, ad, bd, conv2_same),
        "SSIM": mef_ssim((a8, b8), f8),
    }
