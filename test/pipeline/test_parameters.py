"""The parameter table is the single source: the YAML and the README table are its renderings, and every value
is checked with a one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from psfusion_ros.errors import ConfigError
from psfusion_ros.pipeline.parameters import (
    DEFAULTS,
    PARAMS,
    check_value,
    check_values,
    load_params_file,
    render_params_table,
    render_params_yaml,
)

REPO = Path(__file__).resolve().parents[2]


def test_the_yaml_is_the_rendering_of_the_table() -> None:
    assert (REPO / "config" / "psfusion.yaml").read_text() == render_params_yaml(), "run `make params`"
    assert load_params_file(REPO / "config" / "psfusion.yaml") == DEFAULTS


def test_the_readme_table_is_the_rendering_of_the_table() -> None:
    assert render_params_table() in (REPO / "README.md").read_text(), \
        "paste `python -m psfusion_ros.pipeline.parameters table` into the README"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("thermal.fixed_max", 16000, 16000.0), ("sync.max_interval", 1, 1.0), ("network_height", 480.0, 480),
     ("registration.homography", [1, 0, 0, 0, 1, 0, 0, 0, 1], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])],
)
def test_integers_are_accepted_where_numbers_are_expected(name: str, value: object, expected: object) -> None:
    checked = check_value(name, value)
    assert checked == expected and type(checked) is type(expected)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("device", "tpu", "device='tpu' must be one of auto | cpu | cuda"),
     ("network_width", 650, "out of range: must be 32 <= value <= 2048, a multiple of 32"),
     ("network_height", 100000, "out of range"),
     ("sync.queue_size", 0, "out of range: must be 1 <= value <= 1000"),
     ("sync.queue_size", 2.5, "must be an integer"),
     ("qos.depth", -1, "out of range"),
     ("diagnostics.period", 0.0, "diagnostics.period=0.0 is out of range: must be 0.1 <= value"),
     ("diagnostics.stale_timeout", -1.0, "out of range"),
     ("publish.overlay_alpha", 1.5, "out of range: must be 0 <= value <= 1"),
     ("publish.color", "yes", "must be true or false, got 'yes' (a string)"),
     ("thermal.invert", 1, "must be true or false, got 1 (an integer)"),
     ("checkpoint", 3, "must be a string"),
     ("sync.max_interval", float("nan"), "must be finite"),
     ("sync.max_interval", True, "must be a number, got True (a boolean)"),
     ("registration.homography", [1, 2, 3], "must be a list of 9 finite numbers"),
     ("bogus", 3, "unknown parameter 'bogus'"),
     ("thermal.invrt", True, "did you mean thermal.invert?")],
)
def test_bad_values_are_one_line_errors(name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_value(name, value)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_every_parameter_accepts_its_own_default() -> None:
    assert check_values(DEFAULTS) == DEFAULTS
    assert {p.name for p in PARAMS} == set(DEFAULTS)


def test_params_file_sections_for_any_namespace(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"device": "cpu", "network_height": 256}},
                                    "/**/psfusion": {"ros__parameters": {"network_height": 320}},
                                    "other_node": {"ros__parameters": {"device": "cuda"}}}))
    values = load_params_file(path)
    assert values == {"device": "cpu", "network_height": 320}  # the node's own section wins over /**
    path.write_text(yaml.safe_dump({"psfusion": {"ros__parameters": {"sync": {"max_interval": 1}}}}))
    assert load_params_file(path) == {"sync.max_interval": 1.0}


@pytest.mark.parametrize(
    ("text", "message"),
    [("psfusion: [1, 2", "not valid YAML at line"), ("- 1\n- 2\n", "maps node names to ros__parameters"),
     ("other:\n  ros__parameters: {device: cpu}\n", "no ros__parameters for node 'psfusion'"),
     ("psfusion:\n  ros__parameters: {max_interval: 1}\n", "unknown parameter 'max_interval'; did you mean"),
     ("psfusion:\n  ros__parameters: {sync: {queue_size: -2}}\n", "sync.queue_size=-2 is out of range")],
)
def test_broken_params_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_params_file(path)
    assert message in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="no such parameter file"):
        load_params_file(tmp_path / "missing.yaml")
