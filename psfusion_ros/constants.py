"""Numbers that matter, in one place: paper constants, the MSRS palette, the colour matrices."""

from __future__ import annotations

#: Network inputs must be a multiple of this (five stride-2 stages: 2**5).
SIZE_MULTIPLE = 32

#: MSRS semantic classes, in class-id order (id 0 is "unlabelled").
MSRS_CLASSES: tuple[str, ...] = (
    "unlabelled",
    "car",
    "person",
    "bike",
    "curve",
    "car_stop",
    "guardrail",
    "color_cone",
    "bump",
)
NUM_CLASSES = len(MSRS_CLASSES)

#: RGB colour of each class id, as in the reference `get_palette()`.
MSRS_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
    (0, 0, 192),
    (128, 128, 0),
    (64, 64, 128),
    (192, 128, 128),
    (192, 64, 0),
)

#: Label value ignored by segmentation metrics (MSRS protocol).
IGNORE_LABEL = 255

# Colour conversion of the reference (`utils.RGB2YCrCb` / `utils.YCbCr2RGB`). Inputs are in [0, 1].
#: Luma weights for R, G, B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: Cr = (R - Y) * CR_SCALE + 0.5 ; Cb = (B - Y) * CB_SCALE + 0.5
CR_SCALE = 0.713
CB_SCALE = 0.564
CHROMA_OFFSET = 0.5
#: Inverse transform, one row per output channel R, G, B; columns multiply (Y, Cr - 0.5, Cb - 0.5).
YCRCB_TO_RGB = (
    (1.0, 1.403, 0.0),
    (1.0, -0.714, -0.344),
    (1.0, 0.0, 1.773),
)

#: Key under which the official `best_model.pth` stores the network weights.
OFFICIAL_CHECKPOINT_KEY = "MTAN"
#: Format tag of checkpoints this package writes.
PROJECT_CHECKPOINT_FORMAT = "psfusion_ros"

#: Parameter count of PSFusion with 9 classes (official checkpoint), and its state-dict size.
PARAMETER_COUNT = 45_908_840
STATE_DICT_ENTRIES = 1_360
