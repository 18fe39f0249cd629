"""Fusion quality metrics with named profiles (``common`` holds the shared terms), and segmentation metrics."""

from psfusion_ros.metrics.common import grey_255
from psfusion_ros.metrics.fusion import METRIC_NAMES, PROFILES, fusion_metrics, profile_source
from psfusion_ros.metrics.segmentation import ConfusionMatrix

__all__ = ["METRIC_NAMES", "PROFILES", "ConfusionMatrix", "fusion_metrics", "grey_255", "profile_source"]
