"""What the MATLAB scripts of Linfeng-Tang/Image-Fusion (``General Evaluation Metric/Evaluation``) compute, in the
pieces both script versions share; :mod:`tang2022` and :mod:`tang2023` differ only in what they feed them.
"""

from __future__ import annotations

import numpy as np

from psfusion_ros.metrics.common import entropy_bits, gradient_magnitude

REPOSITORY = "github.com/Linfeng-Tang/Image-Fusion, General Evaluation Metric/Evaluation"


def conv2_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``conv2(img, kernel, 'same')`` summed in the order of Octave's ``conv2`` (BLAS-xtra ``dconv2o``): for each
    output pixel, kernel columns last to first, rows first to last, each product added separately. The scripts'
    Qabf branches on exact equality of these sums, so the order decides the value on images with exact ties."""
    ma, na = img.shape
    mb, nb = kernel.shape
    full = np.zeros((ma + mb - 1, na + nb - 1), np.float64)
    for j in reversed(range(nb)):
        for i in range(mb):
            if kernel[i, j] != 0:  # BLAS axpy skips a zero factor
                full[i:i + ma, j:j + na] += kernel[i, j] * img
    r0, c0 = mb // 2, nb // 2  # 'same': the centre part, offset ceil((m - 1) / 2)
    return full[r0:r0 + ma, c0:c0 + na]


def round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB's ``round``."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def uint8_saturate(x: np.ndarray) -> np.ndarray:
    """What MATLAB stores when a double result is assigned to uint8: rounded, clipped to 0..255 (as float64)."""
    return np.clip(round_half_away(x), 0, 255)


def as_uint8(x: np.ndarray) -> np.ndarray:
    """A 0..255 image as the uint8 array ``imread`` gives the scripts."""
    return uint8_saturate(np.asarray(x, np.float64)).astype(np.uint8)


def im2double(x8: np.ndarray) -> np.ndarray:
    """``im2double`` of a uint8 image: x / 255 in float64."""
    return x8.astype(np.float64) / 255.0


def _joint_entropy_saturated(a8: np.ndarray, b8: np.ndarray) -> float:
    """``Hab.m``: its bin index ``uint8 + 1`` saturates at 255, so grey levels 254 and 255 share a bin."""
    ia = np.minimum(a8.astype(np.int64), 254)
    ib = np.minimum(b8.astype(np.int64), 254)
    counts = np.bincount((ia * 256 + ib).ravel(), minlength=256 * 256)
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log2(p)))


def mutual_information_bits(f8: np.ndarray, a8: np.ndarray, b8: np.ndarray) -> float:
    """``MI_evaluation.m``: (H(A) + H(F) − H(F,A)) + (H(B) + H(F) − H(F,B)) in bits, on uint8 images."""
    hf = entropy_bits(f8)
    return (entropy_bits(a8) + hf - _joint_entropy_saturated(f8, a8)) + (
        entropy_bits(b8) + hf - _joint_entropy_saturated(f8, b8))


def cc_evaluation(a: np.ndarray, b: np.ndarray, f: np.ndarray) -> float:
    """``CC_evaluation.m``, including its second correlation centring B with A's mean (sic)."""
    df = f - f.mean()
    r_af = np.sum((a - a.mean()) * df) / np.sqrt(np.sum((a - a.mean()) ** 2) * np.sum(df * df))
    r_bf = np.sum((b - a.mean()) * df) / np.sqrt(np.sum((b - b.mean()) ** 2) * np.sum(df * df))
    return float((r_af + r_bf) / 2)


def average_gradient(img: np.ndarray) -> float:
    """``AG_evaluation.m``: the sum of gradient magnitudes divided by (H−1)(W−1), not H·W."""
    h, w = img.shape
    return float(np.sum(gradient_magnitude(img.astype(np.float64))) / ((h - 1) * (w - 1)))


def psnr_from_unit_mse(mse: float) -> float:
    """``PSNR_evaluation.m``: 20·log10(255/√MSE) with the MSE of [0, 1] images."""
    return float(20 * np.log10(255 / np.sqrt(mse)))
