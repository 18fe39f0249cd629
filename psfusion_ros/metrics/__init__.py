"""Fusion quality metrics with named profiles, and segmentation metrics."""

from psfusion_ros.metrics.fusion import METRIC_NAMES, PROFILES, fusion_metrics
from psfusion_ros.metrics.segmentation import ConfusionMatrix

__all__ = ["METRIC_NAMES", "PROFILES", "ConfusionMatrix", "fusion_metrics"]
