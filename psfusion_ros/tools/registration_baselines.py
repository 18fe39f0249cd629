"""The registration methods ``psfusion-bench registration`` compares the project's estimator with.

Each takes a thermal and an RGB frame (any dtype) and the starting homography (thermal → RGB) a user without
a calibration has, and returns its thermal → RGB homography, or raises when it finds none. They run at the
same working size as the estimator (640 px long side), from coarse to fine where the method allows it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from psfusion_ros.pipeline.registration_features import resized, scale_matrix, unit_gray

WORKING_SIDE = 640
Method = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _working(thermal: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    t, r = unit_gray(thermal), unit_gray(rgb)
    t, ts = resized(t, min(1.0, WORKING_SIDE / max(t.shape)))
    r, rs = resized(r, min(1.0, WORKING_SIDE / max(r.shape)))
    return t, r, ts, rs


def _back(working: np.ndarray, ts: np.ndarray, rs: np.ndarray) -> np.ndarray:
    H = np.linalg.inv(rs) @ working @ ts
    if not np.isfinite(H).all() or abs(H[2, 2]) < 1e-12:
        raise ValueError("no finite homography")
    return H / H[2, 2]


def gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(gray, (0, 0), 1.0)
    m = np.sqrt(cv2.Sobel(g, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(g, cv2.CV_32F, 0, 1) ** 2)
    return m / (float(m.mean()) + 1e-6)


def _ecc(thermal: np.ndarray, rgb: np.ndarray, start: np.ndarray, prepare: Callable[[np.ndarray], np.ndarray]
         ) -> np.ndarray:
    """OpenCV's ECC (MOTION_HOMOGRAPHY) at 1/4, 1/2 and 1/1 of the working size."""
    t, r, ts, rs = _working(thermal, rgb)
    H = rs @ start @ np.linalg.inv(ts)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
    for factor in (0.25, 0.5, 1.0):
        rl, rls = resized(r, factor)
        tl, tls = resized(t, factor)
        warp = (tls @ np.linalg.inv(H) @ np.linalg.inv(rls)).astype(np.float32)  # RGB level → thermal level
        _, warp = cv2.findTransformECC(prepare(rl), prepare(tl), warp / warp[2, 2], cv2.MOTION_HOMOGRAPHY,
                                       criteria, None, 3)
        H = np.linalg.inv(np.linalg.inv(tls) @ warp.astype(np.float64) @ rls)
    return _back(H, ts, rs)


def ecc_intensity(thermal: np.ndarray, rgb: np.ndarray, start: np.ndarray) -> np.ndarray:
    return _ecc(thermal, rgb, start, lambda g: g)


def ecc_gradient(thermal: np.ndarray, rgb: np.ndarray, start: np.ndarray) -> np.ndarray:
    return _ecc(thermal, rgb, start, gradient_magnitude)


def sift_ransac(thermal: np.ndarray, rgb: np.ndarray, start: np.ndarray) -> np.ndarray:
    """SIFT keypoints, Lowe's ratio test (0.8), RANSAC homography (3 px); the start is not used."""
    t, r, ts, rs = _working(thermal, rgb)
    sift = cv2.SIFT_create(nfeatures=4000)
    kt, dt = sift.detectAndCompute((t * 255).astype(np.uint8), None)
    kr, dr = sift.detectAndCompute((r * 255).astype(np.uint8), None)
    if dt is None or dr is None or len(kt) < 4 or len(kr) < 4:
        raise ValueError("too few keypoints")
    matches = [m for m, n in (p for p in cv2.BFMatcher().knnMatch(dt, dr, k=2) if len(p) == 2)
               if m.distance < 0.8 * n.distance]
    if len(matches) < 4:
        raise ValueError(f"{len(matches)} matches")
    src = np.float32([kt[m.queryIdx].pt for m in matches])
    dst = np.float32([kr[m.trainIdx].pt for m in matches])
    H, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    if H is None:
        raise ValueError("RANSAC found no homography")
    return _back(H, ts, rs)


def simpleitk_mattes_affine(thermal: np.ndarray, rgb: np.ndarray, start: np.ndarray) -> np.ndarray:
    """SimpleITK: Mattes mutual information (50 bins, 20 % samples), affine, shrink 4/2/1 — the registration
    library of record has no 2-D projective transform."""
    import SimpleITK as sitk  # noqa: N813 - the library's own spelling

    t, r, ts, rs = _working(thermal, rgb)
    H0 = rs @ start @ np.linalg.inv(ts)
    inv = np.linalg.inv(H0 / H0[2, 2])  # ITK maps fixed (RGB) points to moving (thermal) points
    fixed, moving = sitk.GetImageFromArray(r.astype(np.float32)), sitk.GetImageFromArray(t.astype(np.float32))
    transform = sitk.AffineTransform(2)
    transform.SetMatrix(inv[:2, :2].ravel().tolist())
    transform.SetTranslation(inv[:2, 2].tolist())
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.2, seed=1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=200)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    method.SetInitialTransform(transform, inPlace=True)
    method.Execute(fixed, moving)
    m = np.eye(3)
    m[:2, :2] = np.asarray(transform.GetMatrix()).reshape(2, 2)
    centre = np.asarray(transform.GetCenter())
    m[:2, 2] = np.asarray(transform.GetTranslation()) + centre - m[:2, :2] @ centre
    return _back(np.linalg.inv(m), ts, rs)


def baselines() -> dict[str, Method]:
    """The methods available here (SimpleITK only when it is installed)."""
    methods: dict[str, Method] = {"opencv-ecc-intensity": ecc_intensity, "opencv-ecc-gradient": ecc_gradient,
                                  "sift-ransac": sift_ransac}
    try:
        import SimpleITK  # noqa: F401
    except ImportError:
        pass
    else:
        methods["simpleitk-mattes-affine"] = simpleitk_mattes_affine
    return methods


def nominal(thermal_size: tuple[int, int], rgb_size: tuple[int, int]) -> np.ndarray:
    """What a user without a calibration starts from: the thermal frame stretched over the RGB frame."""
    return scale_matrix(thermal_size, rgb_size)
