"""PipelineConfig: one object from parameters or the node's YAML, validated, round-tripping, building pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from psfusion_ros.errors import ConfigError
from psfusion_ros.pipeline.config import NodeConfig, PipelineConfig, RegistrationConfig, write_params_file
from psfusion_ros.pipeline.parameters import DEFAULTS

REPO = Path(__file__).resolve().parents[2]


def test_defaults_equal_the_package_yaml() -> None:
    assert PipelineConfig.from_yaml(REPO / "config" / "psfusion.yaml") == PipelineConfig()
    assert NodeConfig.from_params(DEFAULTS) == NodeConfig()


def test_parameters_round_trip() -> None:
    config = PipelineConfig.from_params({"network_height": 256, "thermal": {"invert": True, "mode": "fixed",
                                                                          "fixed_min": 2000, "fixed_max": 9000},
                                         "registration.mode": "homography", "sync.max_interval": 0.02,
                                         "qos.depth": 3, "precision": "bf16"})
    assert config.network_size == (256, 640) and config.thermal.invert and config.thermal.fixed_max == 9000.0
    assert config.engine.precision == "bf16" and config.sync.max_interval_ns == 20_000_000
    assert PipelineConfig.from_params(config.to_params()) == config
    assert config.with_params({"thermal.invert": False}).thermal.invert is False
    assert config.thermal.invert  # frozen: with_params made a copy


def test_write_params_file_is_read_back_by_every_entry_point(tmp_path: Path) -> None:
    config = PipelineConfig().with_params({"thermal.invert": True, "registration.mode": "homography",
                                           "registration.homography": [1, 0, 4, 0, 1, -2, 0, 0, 1]})
    path = write_params_file(tmp_path / "vehicle.yaml", {**config.to_params(), "qos.depth": 2})
    assert PipelineConfig.from_yaml(path) == config


@pytest.mark.parametrize(
    ("make", "message"),
    [(lambda: PipelineConfig(network_size=(480, 650)), "network_width=650 is out of range"),
     (lambda: PipelineConfig().with_params({"backend": "tensorrt"}), "backend tensorrt runs a program built by "
                                                                        "psfusion-export"),
     (lambda: PipelineConfig().with_params({"backend": "tensorrt", "engine_path": "x.ep", "device": "cpu"}),
      "needs device cuda"),
     (lambda: PipelineConfig().with_params({"thermal.low_percentile": 60, "thermal.high_percentile": 40}),
      "must be below"),
     (lambda: RegistrationConfig(plane_depth=0.0), "plane_depth=0.0 is out of range"),
     (lambda: PipelineConfig.from_params({"sync.queue_sise": 3}), "did you mean sync.queue_size?")],
)
def test_invalid_configurations_are_one_line_errors(make, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_image_folder_configuration_is_the_papers_path() -> None:
    base = PipelineConfig().with_params({"thermal.invert": True, "registration.mode": "homography"})
    folders = base.for_image_folders()
    assert folders.network_size is None and folders.resample == "paper"
    assert folders.registration == RegistrationConfig() and folders.thermal.invert  # thermal stays as configured
    changed = folders.with_params({"device": "cpu", "thermal.invert": False})
    assert changed.network_size is None and changed.resample == "paper"  # per-frame size survives other changes
    assert folders.with_params({"network_height": 64}).network_size == (64, 640)


def test_the_builder_applies_every_section(det_model, tmp_path: Path) -> None:
    from psfusion_ros.pipeline.builder import build_pipeline

    H = [1.0, 0.0, 8.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # thermal moves 8 px right in the RGB frame
    config = PipelineConfig(network_size=(64, 96)).with_params(
        {"device": "cpu", "registration.mode": "homography", "registration.homography": H,
         "thermal.mode": "fixed", "thermal.fixed_min": 1000, "thermal.fixed_max": 3000})
    pipeline = build_pipeline(config, model=det_model)
    thermal = np.full((64, 96), 2000, np.uint16)
    result = pipeline(np.zeros((64, 96, 3), np.uint8), thermal)
    assert result.thermal[:, :8].max() == 0.0  # registration left the first 8 columns uncovered
    assert np.allclose(result.thermal[:, 9:-1], 0.5)  # fixed normalization: 2000 counts → 0.5
    assert pipeline.config is config and pipeline.num_classes == 9
