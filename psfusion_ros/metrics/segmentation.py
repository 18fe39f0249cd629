"""Semantic segmentation metrics over a whole set: confusion matrix, per-class IoU, mIoU, pixel accuracy.

The MSRS protocol: 9 classes (unlabelled included, class 0), label 255 ignored, the confusion matrix summed over
every pixel of every image before dividing (not a mean of per-image scores).
"""

from __future__ import annotations

import numpy as np

from psfusion_ros.constants import IGNORE_LABEL, MSRS_CLASSES
from psfusion_ros.errors import FrameError


class ConfusionMatrix:
    """Rows: ground truth, columns: prediction."""

    def __init__(self, num_classes: int = len(MSRS_CLASSES), ignore_label: int = IGNORE_LABEL) -> None:
        self.num_classes = num_classes
        self.ignore_label = ignore_label
        self.matrix = np.zeros((num_classes, num_classes), np.int64)

    def update(self, prediction: np.ndarray, label: np.ndarray) -> None:
        if prediction.shape != label.shape:
            raise FrameError(f"prediction {prediction.shape} and label {label.shape} differ in shape")
        label = label.astype(np.int64).ravel()
        prediction = prediction.astype(np.int64).ravel()
        keep = (label != self.ignore_label) & (label >= 0) & (label < self.num_classes)
        prediction = np.clip(prediction[keep], 0, self.num_classes - 1)
        self.matrix += np.bincount(label[keep] * self.num_classes + prediction,
                                   minlength=self.num_classes ** 2).reshape(self.num_classes, self.num_classes)

    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for classes that appear neither in labels nor predictions."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def summary(self, class_names: tuple[str, ...] | None = None) -> dict[str, object]:
        """mIoU, pixel accuracy and per-class IoU (MSRS names for 9 classes, else ``class_<id>``)."""
        if class_names is None:
            class_names = MSRS_CLASSES if self.num_classes == len(MSRS_CLASSES) else tuple(
                f"class_{i}" for i in range(self.num_classes))
        iou = self.iou()
        total = self.matrix.sum()
        return {
            "mIoU": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "pixel_accuracy": float(np.trace(self.matrix) / total) if total else float("nan"),
            "per_class_IoU": {name: (None if np.isnan(v) else float(v)) for name, v in zip(class_names, iou)},
            "pixels": int(total),
        }
