"""A drive recorded as image_transport records it (JPEG RGB, 16-bit PNG thermal on ``…/compressed``) evaluates
offline and live like the raw recording of the same frames: thermal exactly equal, fused images equal up to the JPEG
loss; the output bag can be compressed too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from psfusion_ros.harness.synthetic import synthetic_frame, temperature_to_uint8
from psfusion_ros.io.bags import BagReader, BagWriter, image_message, stamp_of
from psfusion_ros.io.image_codec import decode_image, decode_rgb, decode_thermal
from psfusion_ros.io.image_files import write_image
from psfusion_ros.pipeline.parameters import load_params_file

BIN = Path(sys.executable).parent
SIZE = (96, 128)
COMPRESSED = ["--thermal-topic", "/thermal/image_raw/compressed", "--rgb-topic", "/rgb/image_raw/compressed"]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=900)


def _drive(tmp: Path, count: int = 6) -> tuple[Path, Path]:
    for k in range(count):
        scene = synthetic_frame(k, *SIZE, seed=5)
        write_image(tmp / "data" / "vi" / f"{k:03d}.png", scene.visible)
        write_image(tmp / "data" / "ir" / f"{k:03d}.png", temperature_to_uint8(scene.temperature))
    bags = []
    for name, extra in (("raw", []), ("compressed", ["--compressed"])):
        made = _run("psfusion-bag", "--ir", tmp / "data" / "ir", "--vi", tmp / "data" / "vi", "--out", tmp / name,
                    "--rate", "4", "--thermal-encoding", "mono16", "--jitter-ms", "2", *extra)
        assert made.returncode == 0, made.stderr
        bags.append(tmp / name)
    assert "compressed (JPEG RGB, PNG thermal)" in made.stdout
    return bags[0], bags[1]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse)) if mse else float("inf")


def _outputs(bag: Path, topic: str) -> dict[int, np.ndarray]:
    with BagReader(bag) as reader:
        return {stamp_of(m): np.array(decode_rgb(m) if topic.endswith("compressed") else decode_image(m))
                for _, _, m in reader.messages([topic])}


def test_a_compressed_drive_evaluates_like_the_raw_one(tmp_path: Path, official_checkpoint: Path) -> None:
    raw, compressed = _drive(tmp_path)
    with BagReader(compressed) as reader:
        topics = reader.topics()
        assert topics["/rgb/image_raw/compressed"] == ("sensor_msgs/msg/CompressedImage", 6)
        assert topics["/thermal/image_raw/compressed"] == ("sensor_msgs/msg/CompressedImage", 6)
        thermal_c = {stamp_of(m): decode_thermal(m) for _, _, m in reader.messages(["/thermal/image_raw/compressed"])}
    with BagReader(raw) as reader:
        thermal_r = {stamp_of(m): decode_thermal(m) for _, _, m in reader.messages(["/thermal/image_raw"])}
    assert thermal_c.keys() == thermal_r.keys()
    for stamp, pixels in thermal_r.items():  # 16-bit PNG: lossless
        assert thermal_c[stamp].dtype == np.uint16 and np.array_equal(thermal_c[stamp], pixels)

    # the same frames as the node decodes them from the compressed drive, recorded raw
    decoded = tmp_path / "decoded"
    with BagReader(compressed) as reader, BagWriter(decoded) as writer:
        for topic, log_time, msg in reader.messages(list(topics)):
            if topic.endswith("compressed"):
                pixels = decode_thermal(msg) if "thermal" in topic else decode_rgb(msg)
                msg = image_message(pixels, "mono16" if "thermal" in topic else "rgb8", msg.header)
                topic = topic[: -len("/compressed")]
            writer.write(topic, msg, log_time)

    common = ["--checkpoint", official_checkpoint, "--network-size", "64x96", "--device", "cpu", "--no-html"]
    reports = {}
    for name, bag, extra in (("raw", raw, []), ("decoded", decoded, []), ("compressed", compressed, COMPRESSED),
                             ("compressed_out", compressed, [*COMPRESSED, "--compress-output"])):
        out = tmp_path / f"eval_{name}"
        result = _run("psfusion-eval", "--bag", bag, "--out", out, *common, *extra)
        assert result.returncode == 0, result.stderr
        reports[name] = json.loads((out / "report.json").read_text())
        assert reports[name]["pairs"] == 6
    assert reports["raw"]["source"]["transports"] == {"/thermal/image_raw": "raw", "/rgb/image_raw": "raw"}
    assert set(reports["compressed"]["source"]["transports"].values()) == {"compressed"}
    assert reports["compressed_out"]["output_compressed"] and not reports["compressed"]["output_compressed"]

    fused = {name: _outputs(tmp_path / f"eval_{name}" / "bag", "/psfusion/fused/image")
             for name in ("raw", "decoded", "compressed")}
    assert fused["raw"].keys() == fused["compressed"].keys() == fused["decoded"].keys() and len(fused["raw"]) == 6
    for stamp, image in fused["compressed"].items():  # the only difference from raw is what JPEG changed
        # two processes run the same float network on the same frames; oneDNN's results may differ in the last bit
        # with buffer alignment (seen: 30 of 36864 values off by 1 on one frame), so equal up to one grey level
        diff = np.abs(image.astype(np.int16) - fused["decoded"][stamp].astype(np.int16))
        changed = np.count_nonzero(diff)
        assert diff.max() <= 1 and changed <= 0.01 * diff.size, (stamp, diff.max(), changed)
    psnr = [_psnr(fused["compressed"][s], fused["raw"][s]) for s in fused["raw"]]
    print(f"fused PSNR, compressed drive (JPEG q95 RGB) vs raw drive: min {min(psnr):.1f} dB, "
          f"mean {np.mean(psnr):.1f} dB")
    assert min(psnr) > 20, psnr  # the same images (a channel swap or a shifted frame is ~10 dB)

    out_bag = tmp_path / "eval_compressed_out" / "bag"
    jpegs = _outputs(out_bag, "/psfusion/fused/image/compressed")
    assert min(_psnr(jpegs[s], fused["compressed"][s]) for s in jpegs) > 30 and len(jpegs) == 6
    with BagReader(out_bag) as reader:
        masks = {stamp_of(m): m for _, _, m in reader.messages(["/psfusion/segmentation/mask/compressed"])}
    raw_masks = _outputs(tmp_path / "eval_compressed" / "bag", "/psfusion/segmentation/mask")
    for stamp, msg in masks.items():  # class ids: lossless
        assert msg.format == "mono8; png compressed "
        assert np.array_equal(decode_thermal(msg), raw_masks[stamp])
    assert len(masks) == 6


def test_a_compressed_drive_through_the_live_node(tmp_path: Path) -> None:
    _, compressed = _drive(tmp_path, count=5)
    out = tmp_path / "eval"
    result = _run("psfusion-eval", "--bag", compressed, "--out", out, "--allow-untrained", "--network-size", "64x96",
                  "--device", "cpu", "--no-html", "--live", *COMPRESSED)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    node_params = load_params_file(out / "live" / "node_params.yaml")
    assert node_params["thermal.transport"] == node_params["rgb.transport"] == "compressed"
    run = report["live"]["runs"][0]
    assert run["total"] == 5 and run["accounted"] and run["published"] >= 1, run
    assert run["node"]["exit_code"] == 0 and run["messages_sent"]["/rgb/image_raw/compressed"] == 5
    assert set(run["metrics"]) >= {"EN", "SSIM"}
