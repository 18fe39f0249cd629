"""The environment the harness gives the processes it starts (bench, demo, live evaluation)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from psfusion_ros.harness.node_process import private_ros_env


@pytest.fixture(autouse=True)
def _restored_environment(monkeypatch) -> None:
    """private_ros_env writes os.environ: let monkeypatch put every key it touches back afterwards."""
    for key in ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE"):
        monkeypatch.setenv(key, "placeholder")


def test_private_env_is_local_and_brings_the_large_image_profile(monkeypatch) -> None:
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("RMW_IMPLEMENTATION", raising=False)
    env = private_ros_env(domain_id=77)
    assert env["ROS_DOMAIN_ID"] == "77" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    profile = Path(env["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile.name == "fastdds_large_images.xml" and "<type>SHM</type>" in profile.read_text()
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(profile)  # this process's own participants too


def test_a_profile_or_another_middleware_the_user_chose_is_kept(monkeypatch, tmp_path: Path) -> None:
    own = tmp_path / "mine.xml"
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(own))
    assert private_ros_env(domain_id=78)["FASTDDS_DEFAULT_PROFILES_FILE"] == str(own)
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE")
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_cyclonedds_cpp")
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in private_ros_env(domain_id=79)
