"""ROS-free processing: resizing, colour, engines and the FusionPipeline used everywhere."""

from psfusion_ros.pipeline.fusion_pipeline import FusionPipeline, FusionResult

__all__ = ["FusionPipeline", "FusionResult"]
