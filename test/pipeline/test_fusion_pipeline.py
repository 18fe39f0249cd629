"""The FusionPipeline end to end with the real network at small size, built as every entry point builds it."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import deterministic_pair, paper_pipeline
from psfusion_ros import PSFusion
from psfusion_ros.errors import ConfigError, FrameError
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.fusion_pipeline import STAGES, FusionPipeline


@pytest.fixture(scope="module")
def pipeline(det_model: PSFusion) -> FusionPipeline:
    return paper_pipeline(det_model)


def _pair(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.random((h, w, 3)) * 255).astype(np.uint8), (rng.random((h, w)) * 255).astype(np.uint8)


def test_outputs_are_in_the_visible_frame_geometry(pipeline: FusionPipeline) -> None:
    vi, ir = _pair(70, 100)
    result = pipeline(vi, ir)
    assert result.network_size == (64, 96)
    assert result.fused.shape == (70, 100, 3) and result.fused.dtype == np.uint8
    assert result.class_ids.shape == (70, 100) and result.class_ids.dtype == np.uint8
    assert result.class_ids.max() < 9
    assert set(result.timing_ms) == set(STAGES)
    assert not result.thermal_blank


def test_grey_visible_gives_grey_fused_output(pipeline: FusionPipeline) -> None:
    _, ir = _pair(64, 96)
    grey = np.full((64, 96, 3), 90, np.uint8)
    fused = pipeline(grey, ir).fused.astype(int)
    assert np.abs(fused[..., 0] - fused[..., 1]).max() <= 1
    assert np.abs(fused[..., 2] - fused[..., 1]).max() <= 1
    assert fused.std() > 0  # the network's luminance, not the flat input


def test_float_thermal_in_unit_range_matches_uint8_thermal(det_model: PSFusion) -> None:
    pipeline = paper_pipeline(det_model, **{"thermal.mode": "none"})
    vi, ir = _pair(64, 96)
    a = pipeline(vi, ir)
    b = pipeline(vi, ir.astype(np.float32) / 255.0)
    assert np.abs(a.fused.astype(int) - b.fused.astype(int)).max() <= 1


def test_batch_equals_one_by_one(pipeline: FusionPipeline) -> None:
    pairs = [_pair(64, 96, seed) for seed in range(2)]
    batch = pipeline.run_batch([p[0] for p in pairs], [p[1] for p in pairs])
    for (vi, ir), result in zip(pairs, batch):
        single = pipeline(vi, ir)
        assert np.abs(single.fused.astype(int) - result.fused.astype(int)).max() <= 1
        assert (single.class_ids == result.class_ids).mean() > 0.99


def test_fixed_network_size(det_model: PSFusion) -> None:
    config = PipelineConfig(network_size=(32, 64), resample="fast").with_params({"device": "cpu"})
    result = build_pipeline(config, model=det_model)(*_pair(120, 160))
    assert result.network_size == (32, 64) and result.fused.shape == (120, 160, 3)


def test_blank_thermal_is_flagged(pipeline: FusionPipeline) -> None:
    vi, _ = _pair(64, 96)
    assert pipeline(vi, np.zeros((64, 96), np.uint8)).thermal_blank
    assert pipeline(vi, np.full((64, 96), np.nan, np.float32)).thermal_blank
    assert not pipeline(vi, _pair(64, 96, 1)[1]).thermal_blank


def test_inverted_thermal_reaches_the_network(det_model: PSFusion) -> None:
    vi, ir = _pair(64, 96)
    plain = paper_pipeline(det_model)(vi, ir).thermal
    inverted = paper_pipeline(det_model, **{"thermal.invert": True})(vi, ir).thermal
    assert np.array_equal(inverted.astype(int), 255 - plain.astype(int))


@pytest.mark.parametrize(
    ("vi", "ir", "message"),
    [
        (np.zeros((64, 96), np.uint8), np.zeros((64, 96), np.uint8), "visible frame must be"),
        (np.zeros((64, 96, 3), np.float64), np.zeros((64, 96), np.uint8), "visible frame must be"),
        (np.zeros((64, 96, 3), np.uint8), np.zeros((64, 96, 2), np.uint16), "thermal frame must be"),
        (np.zeros((20, 96, 3), np.uint8), np.zeros((20, 96), np.uint8), "smaller than the network minimum"),
    ],
)
def test_bad_frames_raise_clear_errors(pipeline: FusionPipeline, vi, ir, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        pipeline(vi, ir)


def test_identity_registration_rescales_a_thermal_frame_of_another_size(pipeline: FusionPipeline) -> None:
    vi, _ = _pair(64, 96)
    ir = np.tile(np.linspace(0, 255, 45, dtype=np.uint8), (30, 1))  # half-resolution thermal camera
    result = pipeline(vi, ir)
    assert result.fused.shape == (64, 96, 3) and result.thermal.shape == (64, 96)
    assert result.thermal[:, 0].mean() < 20 and result.thermal[:, -1].mean() > 235  # the ramp, stretched


def test_bad_configuration_is_rejected(det_model: PSFusion) -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        PipelineConfig(network_size=(100, 96))
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        build_pipeline(PipelineConfig().with_params({"device": "cpu", "precision": "fp16"}), model=det_model)
    with pytest.raises(ConfigError, match="resample='nearest' must be one of fast | paper"):
        PipelineConfig(resample="nearest")
    with pytest.raises(ConfigError, match="no checkpoint"):
        build_pipeline(PipelineConfig())


def test_bf16_stays_close_to_fp32(det_model: PSFusion) -> None:
    vi_t, ir_t = deterministic_pair(64, 96)  # smooth, image-like input
    vi = (vi_t[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    ir = (ir_t[0, 0].numpy() * 255).astype(np.uint8)
    fp32 = paper_pipeline(det_model)(vi, ir).fused.astype(float)
    bf16 = paper_pipeline(det_model, precision="bf16")(vi, ir).fused.astype(float)
    assert np.abs(fp32 - bf16).mean() < 4
    assert np.corrcoef(fp32.ravel(), bf16.ravel())[0, 1] > 0.99


def test_warm_up_runs_every_stage_at_the_network_size_and_leaves_no_state(det_model) -> None:
    from psfusion_ros.pipeline.builder import build_pipeline
    from psfusion_ros.pipeline.config import PipelineConfig

    pipeline = build_pipeline(PipelineConfig(network_size=(64, 96)).with_params({"device": "cpu"}), model=det_model)
    engine, shapes = pipeline.engine, []

    class Watched:
        device = engine.device

        def __call__(self, vi, ir):
            shapes.append((tuple(vi.shape), tuple(ir.shape)))
            return engine(vi, ir)

    pipeline.engine = Watched()
    assert pipeline.warm_up() > 0 and shapes == [((1, 3, 64, 96), (1, 1, 64, 96))] * 2  # engine, then all stages
    assert pipeline.thermal.current_range is None  # the first real frame sets the thermal range, not the warm-up
    auto = build_pipeline(PipelineConfig(network_size=None).with_params({"device": "cpu"}), model=det_model)
    assert auto.warm_up() == 0.0
