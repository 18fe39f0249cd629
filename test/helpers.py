"""Helpers shared by the tests: data locations and closed-form weights and inputs."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import torch

TEST_DIR = Path(__file__).resolve().parent
DATA_DIR = TEST_DIR / "data"
SHARED_PAIRS = TEST_DIR.parent.parent / "shared" / "data" / "pairs"
#: psfusion-train settings of the training acceptance runs (the issue's numbers): small crops on the CPU.
TRAIN_ARGS = ["--lr", "0.01", "--warmup-steps", "0", "--crop", "64", "--batch-size", "2", "--device", "cpu"]


def recorded_pair(pair: str) -> tuple:
    """A shared aligned pair (``"tno/04.png"``) as the registration bench loads it: grey infrared, RGB visible,
    both resized to 640x480."""
    import cv2

    from psfusion_ros.io.image_files import read_image

    dataset, name = pair.split("/")
    ir = read_image(SHARED_PAIRS / dataset / "ir" / name, "L")
    vi = read_image(SHARED_PAIRS / dataset / "vi" / name, "RGB")
    return (cv2.resize(ir, (640, 480), interpolation=cv2.INTER_AREA),
            cv2.resize(vi, (640, 480), interpolation=cv2.INTER_AREA))


def deterministic_weights(model: torch.nn.Module) -> torch.nn.Module:
    """Fill every tensor from a closed-form recipe keyed by its name's position.

    The same recipe, applied to the reference implementation's state dict, produced the golden
    outputs in ``test/data``; it depends on no random-number generator, so it is stable across
    torch versions. BatchNorm statistics and GEFM gammas get non-trivial values so every path counts.
    """
    state = model.state_dict()
    with torch.no_grad():
        for index, name in enumerate(sorted(state)):
            tensor = state[name]
            if not tensor.is_floating_point():
                continue
            wave = torch.sin(torch.arange(tensor.numel(), dtype=torch.float64) * 0.7071 + index)
            wave = wave.reshape(tensor.shape)
            if name.endswith("running_var"):
                value = 1.0 + 0.5 * wave.abs()
            elif name.endswith("running_mean"):
                value = 0.1 * wave
            elif name.endswith(("gamma1", "gamma2")):
                value = torch.full_like(wave, 0.5)
            elif tensor.dim() == 1 and name.endswith("weight"):  # norm scales
                value = 1.0 + 0.2 * wave
            elif tensor.dim() == 1:  # biases
                value = 0.05 * wave
            else:
                fan_in = tensor[0].numel()
                value = wave * math.sqrt(3.0 / fan_in)
            tensor.copy_(value.to(tensor.dtype))
    return model


def deterministic_pair(height: int = 64, width: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth closed-form visible (1,3,H,W) and infrared (1,1,H,W) tensors in [0, 1]."""
    y = torch.linspace(0, 1, height, dtype=torch.float64)[:, None]
    x = torch.linspace(0, 1, width, dtype=torch.float64)[None, :]
    vi = torch.stack([0.5 + 0.4 * torch.sin(6 * x + 3 * y + k) for k in range(3)])[None]
    ir = (0.5 + 0.45 * torch.cos(9 * x * y + 4 * x))[None, None]
    return vi.float(), ir.float()


def paper_pipeline(model: torch.nn.Module, **params: object):
    """The paper's folder pipeline (per-image size, PIL resampling) on the CPU with ``model``'s weights."""
    from psfusion_ros.pipeline.builder import build_pipeline
    from psfusion_ros.pipeline.config import PipelineConfig

    config = PipelineConfig().with_params({"device": "cpu", **params}).for_image_folders()
    return build_pipeline(config, model=model)


def started_as_a_background_job() -> None:
    """``preexec_fn``: start a tool with SIGINT ignored, as a non-interactive shell starts its background jobs (a CI
    runner or a script with ``&``); tools that promise what Ctrl-C does must install their handler themselves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
