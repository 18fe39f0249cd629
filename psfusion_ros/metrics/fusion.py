"""Image-fusion metrics: EN, SD, SF, AG, MI, MSE, CC, PSNR, SCD, VIF, Qabf, SSIM.

Profiles reproduce a published implementation number for number, so figures compare with papers:

* ``cddfuse`` — ``utils/Evaluator.py`` of MMIF-CDDFuse as its authors ran it: grey images read as float32
  (OpenCV, rounded), MI in nats (scikit-learn's ``mutual_info_score``), VIF as the pixel-domain multi-scale
  VIFp summed over both sources, Qabf with true convolution and zero padding, SSIM = ssim(F,A) + ssim(F,B) with
  scikit-image ≤0.19's treatment of float input (data range 2, 7x7 uniform window, sample covariance).
  Same arithmetic and dtypes; only the slow pieces are replaced by equivalent vectorized filters and
  histograms (``cv2`` separable/box filters, ``bincount``).
* ``tang2023`` — the MATLAB scripts of Linfeng-Tang/Image-Fusion (``General Evaluation Metric``), see
  :mod:`psfusion_ros.metrics.tang2023`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

#: Smallest side for which VIF's 17/9/5/3-tap 'valid' filters with 2x decimation leave pixels at every scale.
MIN_SIZE = 47
METRIC_NAMES = ("EN", "SD", "SF", "AG", "MI", "MSE", "CC", "PSNR", "SCD", "VIF", "Qabf", "SSIM")


# -- single-image metrics ----------------------------------------------------------------------------
def entropy(img: np.ndarray) -> float:
    hist = np.bincount(np.uint8(np.round(img)).ravel(), minlength=256) / img.size
    return float(-np.sum(hist * np.log2(hist + (hist == 0))))


def spatial_frequency(img: np.ndarray) -> float:
    return float(np.sqrt(np.mean((img[:, 1:] - img[:, :-1]) ** 2) + np.mean((img[1:, :] - img[:-1, :]) ** 2)))


def average_gradient(img: np.ndarray) -> float:
    gx, gy = np.zeros_like(img), np.zeros_like(img)
    gx[:, 0], gx[:, -1] = img[:, 1] - img[:, 0], img[:, -1] - img[:, -2]
    gx[:, 1:-1] = (img[:, 2:] - img[:, :-2]) / 2
    gy[0, :], gy[-1, :] = img[1, :] - img[0, :], img[-1, :] - img[-2, :]
    gy[1:-1, :] = (img[2:, :] - img[:-2, :]) / 2
    return float(np.mean(np.sqrt((gx**2 + gy**2) / 2)))


# -- reference-based metrics ---------------------------------------------------------------------------
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


def _corr(a: np.ndarray, b: np.ndarray) -> np.floating:
    da, db = a - np.mean(a), b - np.mean(b)
    return np.sum(da * db) / np.sqrt(np.sum(da**2) * np.sum(db**2))


def _mse(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.floating:
    return (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2


def _gauss_kernel_1d(n: int) -> np.ndarray:
    """1-D factor of MATLAB's fspecial('gaussian', n, n/5) normalized so that outer(k, k) sums to 1."""
    sd = n / 5.0
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2 * sd * sd))
    return g / g.sum()


def _valid_filter(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``convolve2d(img, outer(k, k), 'valid')`` for a symmetric separable kernel, in float64."""
    r = len(k) // 2
    full = cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_CONSTANT)
    return full[r:img.shape[0] - r, r:img.shape[1] - r]


def vif_scales(images: tuple[np.ndarray, ...]):
    """(scale, kernel, images at that scale) for VIF's four scales: 17/9/5/3-tap Gaussian windows
    (MATLAB's fspecial('gaussian', N, N/5)), each coarser scale filtered 'valid' and decimated by 2."""
    images = tuple(x.astype(np.float64) for x in images)
    for scale in range(1, 5):
        k = _gauss_kernel_1d(2 ** (4 - scale + 1) + 1)
        if scale > 1:
            images = tuple(_valid_filter(x, k)[::2, ::2] for x in images)
        yield scale, k, images


def vif_terms(s1: np.ndarray, s2: np.ndarray, s12: np.ndarray) -> tuple[np.float64, np.float64]:
    """Numerator and denominator sums of one VIF scale from the local (co)variances, with the guards of
    the reference implementations applied in their order (``copyto(where=)``: masked assignment)."""
    sigma_nsq, eps = 2.0, 1e-10
    s1, s2 = np.maximum(s1, 0), np.maximum(s2, 0)
    g = s12 / (s1 + eps)
    sv = s2 - g * s12
    low1 = s1 < eps
    np.copyto(g, 0.0, where=low1)
    np.copyto(sv, s2, where=low1)
    np.copyto(s1, 0.0, where=low1)
    low2 = s2 < eps
    np.copyto(g, 0.0, where=low2)
    np.copyto(sv, 0.0, where=low2)
    neg = g < 0
    np.copyto(sv, s2, where=neg)
    np.copyto(g, 0.0, where=neg)
    np.maximum(sv, eps, out=sv)
    return np.sum(np.log10(1 + g * g * s1 / (sv + sigma_nsq))), np.sum(np.log10(1 + s1 / sigma_nsq))


def _vif_pair(refs: tuple[np.ndarray, ...], dist: np.ndarray) -> list[float]:
    """Pixel-domain VIF (Sheikh & Bovik) of each reference against ``dist``; the distorted image's pyramid
    and statistics are computed once for all references."""
    num, den = [np.float64(0.0)] * len(refs), [np.float64(0.0)] * len(refs)
    for _, k, (*scaled_refs, d) in vif_scales((*refs, dist)):
        mu2 = _valid_filter(d, k)
        s2 = _valid_filter(d * d, k) - mu2 * mu2
        for i, ref in enumerate(scaled_refs):
            mu1 = _valid_filter(ref, k)
            n, m = vif_terms(_valid_filter(ref * ref, k) - mu1 * mu1, s2, _valid_filter(ref * d, k) - mu1 * mu2)
            num[i] += n
            den[i] += m
    return [1.0 if np.isnan(n / d) else float(n / d) for n, d in zip(num, den)]


_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float32)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)


def _conv_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``convolve2d(img, kernel, 'same')`` (true convolution, zero padding), float32."""
    return cv2.filter2D(img, cv2.CV_32F, cv2.flip(kernel, -1), borderType=cv2.BORDER_CONSTANT)


def _edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx, sy = _conv_same(img, _SOBEL_X), _conv_same(img, _SOBEL_Y)
    strength = np.sqrt(sx * sx + sy * sy)
    nz = sx != 0
    angle = np.arctan(np.divide(sy, sx, out=np.zeros_like(sy), where=nz))
    angle[~nz] = math.pi / 2
    return strength, angle


def _edge_preservation(a_ang: np.ndarray, g_a: np.ndarray, f_ang: np.ndarray, g_f: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):  # the unused branch may divide by zero
        gaf = np.where(g_a > g_f, g_f / g_a, np.where(g_a == g_f, g_f, g_a / g_f))
    aaf = 1 - np.abs(a_ang - f_ang) / (math.pi / 2)
    q_g = 0.9994 / (1 + np.exp(-15 * (gaf - 0.5)))
    q_a = 0.9879 / (1 + np.exp(-22 * (aaf - 0.8)))
    return q_g * q_a


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    (ga, aa), (gb, ab), (gf, af) = _edges(a), _edges(b), _edges(f)
    qa, qb = _edge_preservation(aa, ga, af, gf), _edge_preservation(ab, gb, af, gf)
    return float(np.sum(qa * ga + qb * gb) / np.sum(ga + gb))


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


def _cddfuse(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    mse = _mse(f, a, b)
    fa, fb = f - a, f - b
    return {
        "EN": entropy(f),
        "SD": float(np.std(f)),
        "SF": spatial_frequency(f),
        "AG": average_gradient(f),
        "MI": mutual_information_nats(f, a) + mutual_information_nats(f, b),
        "MSE": float(mse),
        "CC": float((_corr(a, f) + _corr(b, f)) / 2),
        "PSNR": float(10 * np.log10(np.max(f) ** 2 / mse)),
        "SCD": float(_corr(a, fb) + _corr(b, fa)),
        "VIF": sum(_vif_pair((a, b), f)),
        "Qabf": qabf(f, a, b),
        "SSIM": sum(_ssim_many(f, (a, b))),
    }


def _tang2023(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    from psfusion_ros.metrics.tang2023 import tang2023_metrics

    return tang2023_metrics(f, a, b)


PROFILES: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, float]]] = {
    "cddfuse": _cddfuse,
    "tang2023": _tang2023,
}


def fusion_metrics(fused: np.ndarray, ir: np.ndarray, vi: np.ndarray, profile: str = "cddfuse") -> dict[str, float]:
    """All twelve metrics for one fused image against its infrared and visible sources.

    Inputs are 2-D arrays in 0–255 of equal shape (grey; convert colour images to luma first). They are
    taken as float32, as the reference implementations read images.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown metrics profile {profile!r}; expected one of {tuple(PROFILES)}")
    arrays = [np.asarray(x, dtype=np.float32) for x in (fused, ir, vi)]
    if any(x.ndim != 2 for x in arrays) or len({x.shape for x in arrays}) != 1:
        raise ValueError(f"fusion_metrics needs three 2-D images of one shape, got {[x.shape for x in arrays]}")
    if min(arrays[0].shape) < MIN_SIZE:
        raise ValueError(f"images must be at least {MIN_SIZE}x{MIN_SIZE} pixels (VIF's four scales)")
    if not all(np.isfinite(x).all() for x in arrays):
        raise ValueError("images contain NaN or Inf")
    with np.errstate(divide="ignore", invalid="ignore"):  # degenerate inputs give inf/NaN, as the references do
        return PROFILES[profile](*arrays)
