"""PSFusion network and checkpoint I/O."""

from psfusion_ros.errors import CheckpointError
from psfusion_ros.model.checkpoint import load_checkpoint, save_checkpoint
from psfusion_ros.model.psfusion import PSFusion, PSFusionOutput

__all__ = ["CheckpointError", "PSFusion", "PSFusionOutput", "load_checkpoint", "save_checkpoint"]
