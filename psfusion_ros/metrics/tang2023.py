"""The ``tang2023`` profile: the MATLAB scripts of Linfeng-Tang/Image-Fusion as revised on 2023-03-03 (what a clone
of that repository runs today). Against :mod:`tang2022`:

* every metric except EN and MI receives ``im2double(x) * 255`` (float64, no uint8 saturation): SF is 255x the 2022
  value, SD and VIF lose their saturation, Qabf's exact-equality branch sees [0, 255] magnitudes;
* MSE and PSNR divide by 255 inside, so they equal the 2022 values;
* SSIM is ``0.5*ssim(F,A) + 0.5*ssim(F,B)`` with MATLAB's ``ssim``: 11x11 Gaussian (σ 1.5) weights, replicate
  padding, K = (0.01, 0.03) and, for double input, ``DynamicRange`` 1 whatever the values' range.
"""

from __future__ import annotations

import cv2
import numpy as np

from psfusion_ros.metrics.common import (
    correlation,
    entropy_bits,
    gaussian_window,
    mean_squared_error,
    qabf,
    spatial_frequency,
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
)

SOURCE = f"{REPOSITORY} as revised 2023-03-03 (analysis_Reference.m, MSE_evaluation.m, PSNR_evaluation.m)"


def matlab_ssim(x: np.ndarray, ref: np.ndarray, dynamic_range: float = 1.0) -> float:
    """MATLAB ``ssim(x, ref)`` with its defaults for double images (``DynamicRange`` 1)."""
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2
    g = gaussian_window(11, 1.5)

    def filt(img: np.ndarray) -> np.ndarray:  # imfilter(img, fspecial('gaussian', 11, 1.5), 'conv', 'replicate')
        return cv2.sepFilter2D(img, cv2.CV_64F, g, g, borderType=cv2.BORDER_REPLICATE)

    mux, muy = filt(x), filt(ref)
    muxy, mux2, muy2 = mux * muy, mux * mux, muy * muy
    sx2, sy2, sxy = filt(x * x) - mux2, filt(ref * ref) - muy2, filt(x * ref) - muxy
    ssim_map = ((2 * muxy + c1) * (2 * sxy + c2)) / ((mux2 + muy2 + c1) * (sx2 + sy2 + c2))
    return float(np.mean(ssim_map))


def metrics(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """``f`` fused, ``a`` infrared, ``b`` visible: 2-D arrays in 0..255 (taken as the uint8 images read)."""
    f8, a8, b8 = as_uint8(f), as_uint8(a), as_uint8(b)
    f255, a255, b255 = (im2double(x) * 255 for x in (f8, a8, b8))
    mse = float(mean_squared_error(f255 / 255.0, a255 / 255.0, b255 / 255.0))
    return {
        "EN": entropy_bits(f8),
        "SD": float(np.sqrt(np.sum((f255 - f255.mean()) ** 2) / f255.size)),
        "SF": spatial_frequency(f255),
        "AG": average_gradient(f255),
        "MI": mutual_information_bits(f8, a8, b8),
        "MSE": mse,
        "CC": cc_evaluation(a255, b255, f255),
        "PSNR": psnr_from_unit_mse(mse),
        "SCD": float(correlation(f255 - b255, a255) + correlation(f255 - a255, b255)),
        "VIF": sum(vif_fractions((a255, b255), f255)),
        "Qabf": qabf(f255, a255, b255, conv2_same),
        "SSIM": 0.5 * matlab_ssim(f255, a255) + 0.5 * matlab_ssim(f255, b255),
    }
