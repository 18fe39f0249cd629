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

# -- training (reference train.py, losses.py, Fusion_losses.py, optimizer.py) ----------------------------------
#: SGD with a warm-up from WARMUP_START_LR to LR over WARMUP_STEPS steps, then poly decay with POLY_POWER.
LR, MOMENTUM, WEIGHT_DECAY = 1e-3, 0.9, 5e-4
WARMUP_STEPS, WARMUP_START_LR, POLY_POWER = 1000, 1e-5, 0.9
BATCH_SIZE, CROP = 4, 256
#: OHEM cross-entropy keeps pixels whose probability of the true class is below this (loss > -log(0.75)) ...
OHEM_THRESH = 0.75
#: ... and at least this fraction of the batch's pixels (65,536 of 4x256x256 in the reference).
OHEM_MIN_FRACTION = 0.25
#: Positive weights of the binary (background, foreground) head's BCE.
BINARY_POS_WEIGHT = (1.4548, 19.8962)
#: Weights of the semantic (OHEM CE), binary and boundary terms.
SEG_WEIGHT, BINARY_WEIGHT, BOUNDARY_WEIGHT = 10.0, 10.0, 10.0
#: Fusion loss: correlation, gradient and intensity weights.
FUSION_CORR_WEIGHT, FUSION_GRAD_WEIGHT, FUSION_INTENSITY_WEIGHT = 1.0, 10.0, 10.0
#: Below this correlation sum c = corr(F, Y) + corr(F, IR), the term 1/c continues along its tangent (ours; the
#: reference's 1/c has no minimum: from random weights c starts negative, the term rewards c -> 0 from below and
#: training diverged to NaN within a few epochs). Trained networks reach c > 1, where nothing changes.
CORR_FLOOR = 0.5
#: Reconstruction losses (visible Y, infrared): intensity and second-order gradient weights.
RECON_INTENSITY_WEIGHT, RECON_GRAD_WEIGHT = 5.0, 5.0
#: Windows of the intensity term: local MSE over 9x9 patches, local variance with a 9x9 Gaussian of sigma 1.5.
LOCAL_WINDOW, LOCAL_SIGMA = 9, 1.5
#: Derived boundary targets: label edges dilated by this many pixels.
BOUNDARY_DILATION = 1
