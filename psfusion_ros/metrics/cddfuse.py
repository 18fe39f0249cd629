"""The ``cddfuse`` profile: ``utils/Evaluator.py`` of MMIF-CDDFuse (github.com/Zhaozixiang1228/MMIF-CDDFuse) as its
authors ran it. Grey images as float32 (OpenCV, rounded); MI in nats (scikit-learn's ``mutual_info_score``); VIF the
pixel-domain multi-scale VIFp summed over both sources (NaN read as 1); Qabf with true convolution and zero padding;
SSIM = ssim(F,A) + ssim(F,B) as scikit-image ≤0.19 computed it for float input (data range 2, 7x7 uniform window,
sample covariance); PSNR from the fused image's maximum. Same arithmetic and dtypes; the slow pieces are replaced by
equivalent vectorized filters and histograms.
"""

from __future__ import annotations

import cv2
import numpy as np

from psfusion_ros.metrics.common import (
    correlation,
    entropy_bits,
    gradient_magnitude,
    mean_squared_error,
    qabf,
    spatial_frequency,
    vif_fractions,
)

SOURCE = "MMIF-CDDFuse utils/Evaluator.py (github.com/Zhaozixiang1228/MMIF-CDDFuse)"


def mutual_information_nats(x: np.ndarray, y: np.ndarray) -> float:
    """MI of the joint histogram of exact values, in nats (scikit-learn's mutual_info_score)."""
    xi, nx_levels = _labels(x)
    yi, ny_levels = _labels(y)
    joint = np.bincount(xi * ny_levels + yi, minlength=nx_levels * ny_levels).reshape(nx_levels, ny_levels)
    nx, ny = np.nonzero(joint)
    counts = joint[nx, ny].astype(np.float64)
    total = counts.sum()
    px, py = joint.sum(axis=1).astype(np.float64), joint.sum(axis=0).astype(np.float64)
    p = counts / total
    log_outer = -np.log(px[nx] * py[ny]) + np.log(px.sum()) + np.log(py.sum())
    terms = p * (np.log(counts) - np.log(total)) + p * log_outer
    terms = np.where(np.abs(terms) < np.finfo(np.float64).eps, 0.0, terms)
    return float(max(terms.sum(), 0.0))


def _labels(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer labels of the distinct values: the values themselves for 8-bit grey, else their rank.

    Empty histogram bins drop out of the MI sum, so both give the same contingency table."""
    flat = x.ravel()
    if flat.min() >= 0 and flat.max() <= 255 and np.array_equal(flat, np.round(flat)):
        return flat.astype(np.int64), 256
    values, inverse = np.unique(flat, return_inverse=True)
    return inverse.ravel(), len(values)


def _box7(img: np.ndarray) -> np.ndarray:
    # scipy's uniform_filter(size=7, mode='reflect'): one pass per axis (rows first), each summed in double and
    # stored in the input's float32; the float32 rounding between passes matters where variance cancels.
    rows = cv2.boxFilter(img.astype(np.float64), -1, (1, 7), borderType=cv2.BORDER_REFLECT).astype(img.dtype)
    return cv2.boxFilter(rows.astype(np.float64), -1, (7, 1), borderType=cv2.BORDER_REFLECT).astype(img.dtype)


def _ssim_many(x: np.ndarray, others: tuple[np.ndarray, ...], data_range: float = 2.0) -> list[float]:
    """scikit-image ≤0.19 ``structural_similarity(x, y)`` on float32 input (no data_range given: 2) for
    each ``y`` in ``others``; ``x``'s local statistics are computed once."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    cov_norm = 49 / 48  # sample covariance over the 7x7 window
    ux, uxx = _box7(x), _box7(x * x)
    vx = cov_norm * (uxx - ux * ux)
    scores = []
    for y in others:
        uy, uyy, uxy = _box7(y), _box7(y * y), _box7(x * y)
        vy, vxy = cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        scores.append(float(s[3:-3, 3:-3].mean(dtype=np.float64)))
    return scores


def metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``f`` fused, ``a`` infrared, ``b`` visible: float32 grey images in 0..255."""
    mse = mean_squared_error(f, a, b)
    return {
        "EN": entropy_bits(f),
        "SD": float(np.std(f)),
        "SF": spatial_frequency(f),
        "AG": float(np.mean(gradient_magnitude(f))),
        "MI": mutual_information_nats(f, a) + mutual_information_nats(f, b),
        "MSE": float(mse),
        "CC": float((correlation(a, f) + correlation(b, f)) / 2),
        "PSNR": float(10 * np.log10(np.max(f) ** 2 / mse)),  # float32, as the Evaluator computes it
        "SCD": float(correlation(a, f - b) + correlation(b, f - a)),
        "VIF": sum(1.0 if np.isnan(v) else v for v in vif_fractions((a, b), f)),
        "Qabf": qabf(f, a, b),
        "SSIM": sum(_ssim_many(f, (a, b))),
    }
