"""Terms every metrics profile shares, each written once; a profile picks the inputs' dtype and scale.

The arithmetic happens in the dtype of the arrays passed in: the CDDFuse evaluator works on float32
images, the MATLAB scripts on float64, and reproducing a profile number for number depends on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import cv2
import numpy as np

SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


def grey_255(image: np.ndarray) -> np.ndarray:
    """How the reference evaluators read an image: grey float32 0..255, rounded (OpenCV luma for colour)."""
    if image.ndim == 3:
        return np.round(cv2.cvtColor(image.astype(np.float32), cv2.COLOR_RGB2GRAY))
    return image.astype(np.float32)


# -- single images ------------------------------------------------------------------------------------
def entropy_bits(img: np.ndarray) -> float:
    """Shannon entropy (bits) of the 256-bin grey-level histogram of an image rounded to 8 bits."""
    counts = np.bincount(np.uint8(np.round(img)).ravel(), minlength=256)
    p = counts[counts > 0] / img.size
    return float(-np.sum(p * np.log2(p)))


def spatial_frequency(img: np.ndarray) -> float:
    """sqrt(mean of squared row differences + mean of squared column differences)."""
    return float(np.sqrt(np.mean((img[1:, :] - img[:-1, :]) ** 2) + np.mean((img[:, 1:] - img[:, :-1]) ** 2)))


def gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """sqrt((gx² + gy²) / 2) with MATLAB/numpy ``gradient`` (central inside, one-sided at the border)."""
    gy, gx = np.gradient(img)
    return np.sqrt((gx * gx + gy * gy) / 2)


# -- against the sources ---------------------------------------------------------------------------------
def correlation(a: np.ndarray, b: np.ndarray) -> np.floating:
    """Pearson correlation (MATLAB ``corr2``), computed and returned in the inputs' dtype."""
    da, db = a - np.mean(a), b - np.mean(b)
    return np.sum(da * db) / np.sqrt(np.sum(da**2) * np.sum(db**2))


def mean_squared_error(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.floating:
    """Mean of the fused image's MSE against each source, in the inputs' dtype."""
    return (np.mean((a - f) ** 2) + np.mean((b - f) ** 2)) / 2


# -- VIF (pixel-domain, multi-scale; Sheikh & Bovik) ----------------------------------------------------
def gauss_kernel_1d(n: int) -> np.ndarray:
    """1-D factor of MATLAB's fspecial('gaussian', n, n/5), normalized so that outer(k, k) sums to 1."""
    sd = n / 5.0
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    g = np.exp(-(x * x) / (2 * sd * sd))
    return g / g.sum()


def valid_filter(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``filter2(outer(k, k), img, 'valid')`` for a symmetric separable kernel, in float64."""
    r = len(k) // 2
    full = cv2.sepFilter2D(img, cv2.CV_64F, k, k, borderType=cv2.BORDER_CONSTANT)
    return full[r:img.shape[0] - r, r:img.shape[1] - r]


def vif_scales(images: tuple[np.ndarray, ...]) -> Iterator[tuple[int, np.ndarray, tuple[np.ndarray, ...]]]:
    """(scale, kernel, images at that scale) for VIF's four scales: 17/9/5/3-tap Gaussian windows, each coarser
    scale filtered 'valid' and decimated by 2."""
    images = tuple(x.astype(np.float64) for x in images)
    for scale in range(1, 5):
        k = gauss_kernel_1d(2 ** (4 - scale + 1) + 1)
        if scale > 1:
            images = tuple(valid_filter(x, k)[::2, ::2] for x in images)
        yield scale, k, images


def vif_terms(s1: np.ndarray, s2: np.ndarray, s12: np.ndarray) -> tuple[np.float64, np.float64]:
    """Numerator and denominator sums of one VIF scale from the local (co)variances, with the guards of
    ``vifp_mscale.m`` applied in its order (``copyto(where=)`` is MATLAB's masked assignment)."""
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


Product = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _multiply(x: np.ndarray, y: np.ndarray, scale: int) -> np.ndarray:
    return x * y


def vif_fractions(refs: tuple[np.ndarray, ...], dist: np.ndarray, product: Product = _multiply) -> list[float]:
    """VIF num/den of each reference against ``dist`` (NaN when undefined); the distorted image's pyramid and
    statistics are computed once for all references. ``product(x, y, scale)`` forms the squared and cross
    terms (the MATLAB scripts' uint8 inputs saturate them at scale 1)."""
    num, den = [np.float64(0.0)] * len(refs), [np.float64(0.0)] * len(refs)
    for scale, k, (*scaled_refs, d) in vif_scales((*refs, dist)):
        mu2 = valid_filter(d, k)
        s2 = valid_filter(product(d, d, scale), k) - mu2 * mu2
        for i, ref in enumerate(scaled_refs):
            mu1 = valid_filter(ref, k)
            n, m = vif_terms(valid_filter(product(ref, ref, scale), k) - mu1 * mu1, s2,
                             valid_filter(product(ref, d, scale), k) - mu1 * mu2)
            num[i] += n
            den[i] += m
    return [float(n / d) for n, d in zip(num, den)]


# -- Qabf (Xydeas & Petrovic) ------------------------------------------------------------------------------
Convolve = Callable[[np.ndarray, np.ndarray], np.ndarray]


def conv_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``convolve2d(img, kernel, 'same')`` (true convolution, zero padding) in the image's dtype."""
    ddepth = cv2.CV_32F if img.dtype == np.float32 else cv2.CV_64F
    return cv2.filter2D(img, ddepth, cv2.flip(kernel.astype(img.dtype), -1), borderType=cv2.BORDER_CONSTANT)


def sobel_edges(img: np.ndarray, convolve: Convolve = conv_same) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength and orientation from Sobel responses; orientation is pi/2 where the horizontal response
    is exactly 0."""
    sx, sy = convolve(img, SOBEL_X), convolve(img, SOBEL_Y)
    nz = sx != 0
    angle = np.arctan(np.divide(sy, sx, out=np.zeros_like(sy), where=nz))
    angle[~nz] = math.pi / 2
    return np.sqrt(sx * sx + sy * sy), angle


def edge_preservation(g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Q^{AF} per pixel. Where the strengths are exactly equal the scripts set G = g_F (not 1), so this term
    depends on the images' scale; every published implementation keeps that branch."""
    with np.errstate(divide="ignore", invalid="ignore"):  # the unused branch may divide by zero
        g = np.where(g_src > g_f, g_f / g_src, np.where(g_src == g_f, g_f, g_src / g_f))
    a = 1 - np.abs(a_src - a_f) / (math.pi / 2)
    return 0.9994 / (1 + np.exp(-15 * (g - 0.5))) * (0.9879 / (1 + np.exp(-22 * (a - 0.8))))


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray, convolve: Convolve = conv_same) -> float:
    """Edge information transferred from both sources to the fused image. The exact-equality branches make the
    value depend on how ``convolve`` orders its sums where an image has exact ties (flat or repeated patches)."""
    (ga, aa), (gb, ab), (gf, af) = (sobel_edges(x, convolve) for x in (a, b, f))
    qa, qb = edge_preservation(ga, aa, gf, af), edge_preservation(gb, ab, gf, af)
    return float(np.sum(qa * ga + qb * gb) / np.sum(ga + gb))


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB's fspecial('gaussian', size, sigma)."""
    return cv2.getGaussianKernel(size, sigma, cv2.CV_64F).ravel()
