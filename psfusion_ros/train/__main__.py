"""``python -m psfusion_ros.train`` / ``torchrun --nproc_per_node N -m psfusion_ros.train``: psfusion-train."""

import sys

from psfusion_ros.train.cli import main

sys.exit(main())
