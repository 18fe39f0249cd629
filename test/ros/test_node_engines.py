"""The node with exported artifacts: the compiled program publishes what eager would, a mismatched artifact is
refused at start-up with one line (exit 2), and with engine_fallback the node runs eager fp32 with an ERROR status."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image

from psfusion_ros.io.image_codec import decode_image
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from ros_harness import PARAMS_FILE, Feeder, Harness, NodeProcess, stamp_of

SIZE = (64, 96)
EPOCH_NS = 1_700_000_000_000_000_000


def _frames(k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(k)
    y, x = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    thermal = (20_000 + 2_000 * np.sin(x / 9.0 + k) * np.cos(y / 7.0) + 200 * rng.random(SIZE)).astype(np.uint16)
    rgb = np.clip(np.stack([x * 2 + 40 * k, y * 3, 255 - x * 2], -1) + rng.normal(0, 5, SIZE + (3,)), 0, 255)
    return thermal, rgb.astype(np.uint8)


def _params(checkpoint: Path, **extra: object) -> dict[str, object]:
    return {"checkpoint": str(checkpoint), "device": "cpu", "network_height": SIZE[0], "network_width": SIZE[1],
            "thermal.smoothing": 0.0, "diagnostics.period": 0.3, **extra}


def test_the_compiled_artifact_publishes_what_eager_computes(tmp_path: Path, official_checkpoint: Path,
                                                             aoti_artifact: Path) -> None:
    node = NodeProcess(_params(official_checkpoint, backend="compile", engine_path=str(aoti_artifact)),
                       tmp_path / "node.log", PARAMS_FILE)
    h = Harness(ReliabilityPolicy.RELIABLE)
    try:
        fused, masks = h.record(Image, "fused/image"), h.record(Image, "segmentation/mask")

        def make(i: int) -> tuple[Image, Image]:
            thermal, rgb = _frames(i)
            stamp = EPOCH_NS + i * 100_000_000
            return h.image(thermal, "mono16", stamp, "th"), h.image(rgb, "rgb8", stamp, "rgb")

        assert h.wait_for_node(120), node.output()
        assert Feeder(h, fused, make).until(lambda: len(fused) >= 3 and len(masks) >= 3), node.output()
    finally:
        h.close()
        assert node.interrupt() == 0, node.output()
    assert "ready: checkpoint" in node.output() and "compile fp32" in node.output()
    eager = build_pipeline(PipelineConfig.from_params(_params(official_checkpoint)))
    masks_by_stamp = {stamp_of(m): m for m in masks}
    for msg in fused[:3]:
        k = (stamp_of(msg) - EPOCH_NS) // 100_000_000
        thermal, rgb = _frames(int(k))
        expected = eager(rgb, thermal)
        got = np.array(decode_image(msg)).astype(int)
        assert np.abs(got - expected.fused.astype(int)).max() <= 2
        assert (got == expected.fused).mean() > 0.99
        mask = np.array(decode_image(masks_by_stamp[stamp_of(msg)]))
        assert (mask == expected.class_ids).mean() > 0.999


def _linked_artifact(aoti_artifact: Path, tmp_path: Path, **sidecar: object) -> Path:
    """The same package under another name (hard link: no copy of ~100 MB) with an edited sidecar."""
    path = tmp_path / "psfusion.pt2"
    os.link(aoti_artifact, path)
    meta = json.loads(Path(str(aoti_artifact) + ".json").read_text())
    for key, value in sidecar.items():
        if key == "torch":
            meta["environment"]["torch"] = value
        else:
            meta[key] = value
    Path(str(path) + ".json").write_text(json.dumps(meta))
    return path


@pytest.mark.parametrize(("change", "message"), [
    ({"network_height": 96, "network_width": 128}, "exported for network size 64x96, this node needs 96x128"),
    ({"untrained": True}, "exported for other weights (sha256"),
    ({"sidecar": {"torch": "2.0.0"}}, "exported for torch 2.0.0"),
    ({"sidecar": {"network_size": 64}}, "network_size must be [height, width] (two integers), got 64"),
    ({"sidecar": {"checkpoint_sha256": 12345}}, "checkpoint_sha256 must be a sha256 hex string or null"),
])
def test_a_mismatched_artifact_is_refused_with_one_line(tmp_path: Path, official_checkpoint: Path,
                                                        aoti_artifact: Path, change: dict, message: str) -> None:
    change = dict(change)
    artifact = _linked_artifact(aoti_artifact, tmp_path, **change.pop("sidecar", {}))
    untrained = change.pop("untrained", False)
    params = _params(official_checkpoint, backend="compile", engine_path=str(artifact), **change)
    if untrained:  # the node runs other weights than the package was built from
        del params["checkpoint"]
        params["allow_untrained"] = True
    node = NodeProcess(params, tmp_path / "node.log", PARAMS_FILE)
    try:
        assert node.proc.wait(timeout=120) == 2, node.output()
    finally:
        node.stop()
    last = node.output().strip().splitlines()[-1]
    assert last.startswith("psfusion_node: error: ") and message in last and "re-run psfusion-export" in last, last
    assert "Traceback" not in node.output()


@pytest.mark.parametrize(("sidecar", "reason"), [({"torch": "2.0.0"}, "torch 2.0.0"),
                                                 ({"environment": "cpu"}, "environment must be a mapping")])
def test_engine_fallback_runs_eager_with_an_error_status(tmp_path: Path, official_checkpoint: Path,
                                                         aoti_artifact: Path, sidecar: dict, reason: str) -> None:
    artifact = _linked_artifact(aoti_artifact, tmp_path, **sidecar)
    node = NodeProcess(_params(official_checkpoint, backend="compile", engine_path=str(artifact),
                               engine_fallback=True), tmp_path / "node.log", PARAMS_FILE)
    h = Harness(ReliabilityPolicy.RELIABLE)
    try:
        fused = h.record(Image, "fused/image")
        diagnostics = h.record(DiagnosticArray, "/diagnostics")

        def make(i: int) -> tuple[Image, Image]:
            thermal, rgb = _frames(i)
            stamp = EPOCH_NS + i * 100_000_000
            return h.image(thermal, "mono16", stamp, "th"), h.image(rgb, "rgb8", stamp, "rgb")

        assert h.wait_for_node(120), node.output()
        assert Feeder(h, fused, make).until(lambda: len(fused) >= 2), node.output()

        def fallback_reported() -> bool:
            return any(s.level == b"\x02" and s.message.startswith("engine fallback:") and reason in s.message
                       and {kv.key: kv.value for kv in s.values}["backend"] == "eager"
                       for a in diagnostics[-3:] for s in a.status)

        assert h.spin_until(fallback_reported, 30), [s.message for a in diagnostics for s in a.status][-3:]
    finally:
        h.close()
        assert node.interrupt() == 0, node.output()
    assert "engine fallback" in node.output()
