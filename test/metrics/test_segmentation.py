"""Confusion-matrix mIoU against a matrix computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from psfusion_ros.metrics import ConfusionMatrix


def test_hand_computed_confusion_matrix_and_scores() -> None:
    label = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 1]])
    cm = ConfusionMatrix(num_classes=3)
    cm.update(pred, label)
    # rows = truth, columns = prediction; the 255 pixel is ignored
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 3, 0], [1, 0, 1]]
    iou = cm.iou()
    assert iou.tolist() == pytest.approx([1 / 3, 3 / 4, 1 / 2])  # tp / (row + col − tp)
    summary = cm.summary(("a", "b", "c"))
    assert summary["mIoU"] == pytest.approx((1 / 3 + 3 / 4 + 1 / 2) / 3)
    assert summary["pixel_accuracy"] == pytest.approx(5 / 7) and summary["pixels"] == 7


def test_accumulates_over_images_and_skips_absent_classes() -> None:
    cm = ConfusionMatrix(num_classes=9)
    cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    cm.update(np.full((2, 2), 1, np.uint8), np.full((2, 2), 1, np.uint8))
    summary = cm.summary()
    assert summary["mIoU"] == 1.0 and summary["per_class_IoU"]["person"] is None
    with pytest.raises(ValueError, match="differ in shape"):
        cm.update(np.zeros((2, 3)), np.zeros((2, 2)))
