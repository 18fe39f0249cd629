"""ROS-free processing: synchronization, registration, thermal normalization, resizing, colour, engines."""

from psfusion_ros.pipeline.fusion_pipeline import FusionPipeline, FusionResult
from psfusion_ros.pipeline.sync import ApproximateTimeSync

__all__ = ["ApproximateTimeSync", "FusionPipeline", "FusionResult"]
