"""psfusion_ros: PSFusion infrared/visible fusion and segmentation for ROS 2 and offline tools."""

from psfusion_ros.metrics import fusion_metrics
from psfusion_ros.model import CheckpointError, PSFusion, PSFusionOutput, load_checkpoint, save_checkpoint
from psfusion_ros.pipeline import ApproximateTimeSync, FusionPipeline, FusionResult

__version__ = "0.1.0"

__all__ = [
    "ApproximateTimeSync",
    "CheckpointError",
    "FusionPipeline",
    "FusionResult",
    "PSFusion",
    "PSFusionOutput",
    "fusion_metrics",
    "load_checkpoint",
    "save_checkpoint",
]
