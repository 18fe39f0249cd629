"""The device data path (what runs on CUDA: uint8 upload, thermal, registration, resize, colour, argmax on the
device, one copy back) against the array path, here on CPU tensors: the same network inputs going in, the same
images coming out of the same network output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from psfusion_ros.harness.synthetic import misalignment_homography, synthetic_frame, thermal_counts
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.engines.base import InferenceOutput

RGB, THERMAL, NET = (96, 128), (72, 96), (64, 96)


class Recorder:
    """Stands in for the engine: records its inputs, returns one fixed output (the same for both paths)."""

    def __init__(self, output: InferenceOutput) -> None:
        self.device, self.precision, self.num_classes = torch.device("cpu"), "fp32", 9
        self.output, self.inputs = output, []

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        self.inputs.append((vi.clone(), ir.clone()))
        return self.output


def _fixed_output() -> InferenceOutput:
    y, x = torch.meshgrid(torch.linspace(0, 1, NET[0]), torch.linspace(0, 1, NET[1]), indexing="ij")
    fused = (0.5 + 0.4 * torch.sin(7 * x + 3 * y))[None, None]
    semantic = torch.stack([torch.sin(3 * k * x + 2 * y + k) for k in range(9)])[None]
    return InferenceOutput(fused, semantic)


@pytest.mark.parametrize("registration", ["identity", "homography"])
def test_device_path_matches_the_array_path(det_model, registration: str) -> None:
    H = misalignment_homography(RGB, THERMAL)
    config = PipelineConfig(network_size=NET).with_params({
        "device": "cpu", "registration.mode": registration, "registration.homography": [float(v) for v in H.ravel()],
        "thermal.smoothing": 0.0})
    arrays, tensors = build_pipeline(config, model=det_model), build_pipeline(config, model=det_model)
    assert not arrays.tensor_path  # on the CPU the array path is the default
    tensors.tensor_path = True
    arrays.engine, tensors.engine = Recorder(_fixed_output()), Recorder(_fixed_output())
    scene = synthetic_frame(1, *RGB, seed=4)
    counts = thermal_counts(scene, THERMAL, H)
    a, t = arrays(scene.visible, counts), tensors(scene.visible, counts)

    (vi_a, ir_a), (vi_t, ir_t) = arrays.engine.inputs[0], tensors.engine.inputs[0]
    assert vi_a.shape == vi_t.shape == (1, 3, *NET) and ir_a.shape == ir_t.shape == (1, 1, *NET)
    assert (vi_a - vi_t).abs().mean() < 0.01 and (ir_a - ir_t).abs().mean() < 0.01  # area vs antialiased bilinear

    assert t.fused.shape == a.fused.shape == RGB + (3,) and t.fused.dtype == np.uint8
    fused_diff = np.abs(t.fused.astype(int) - a.fused.astype(int))
    assert fused_diff.mean() < 1.5 and np.percentile(fused_diff, 99) <= 8
    assert t.class_ids.dtype == np.uint8 and (t.class_ids == a.class_ids).mean() > 0.99
    thermal_diff = np.abs(t.thermal.astype(float) - np.round(a.thermal * 255))
    assert np.median(thermal_diff) <= 1 and thermal_diff.mean() < 1.0
    assert set(t.timing_ms) == set(a.timing_ms) and t.thermal_blank == a.thermal_blank is False


def test_device_path_flags_blank_thermal(det_model) -> None:
    pipeline = build_pipeline(PipelineConfig(network_size=NET).with_params({"device": "cpu"}), model=det_model)
    pipeline.tensor_path = True
    result = pipeline(np.zeros(RGB + (3,), np.uint8), np.full(THERMAL, np.nan, np.float32))
    assert result.thermal_blank and result.fused.shape == RGB + (3,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_cuda_pipeline_gives_the_cpu_pipelines_images(det_model, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end with the real network: uint8 upload, device path and one copy back, against the same path on the CPU.
    TF32 convolutions (PyTorch's cuDNN default) are turned off here: with them the closed-form test weights move
    the fused image by ~8 grey levels on an H100, which says nothing about the data path."""
    import copy

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)

    H = misalignment_homography(RGB, THERMAL)
    params = {"registration.mode": "homography", "registration.homography": [float(v) for v in H.ravel()]}
    cpu = build_pipeline(PipelineConfig(network_size=NET).with_params({**params, "device": "cpu"}), model=det_model)
    cuda = build_pipeline(PipelineConfig(network_size=NET).with_params({**params, "device": "cuda"}),
                          model=copy.deepcopy(det_model))
    assert cuda.tensor_path and str(cuda.device).startswith("cuda")
    cpu.tensor_path = True  # the same data path on both devices: only the device differs
    scene = synthetic_frame(2, *RGB, seed=5)
    counts = thermal_counts(scene, THERMAL, H)
    a, t = cpu(scene.visible, counts), cuda(scene.visible, counts)
    assert t.fused.shape == a.fused.shape and t.fused.dtype == np.uint8
    assert np.abs(t.fused.astype(int) - a.fused.astype(int)).mean() < 2.0
    assert (t.class_ids == a.class_ids).mean() > 0.97
