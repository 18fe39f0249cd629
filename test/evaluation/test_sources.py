"""Pair sources as the library gives them to psfusion-eval, training and calibration: a bag mixing a compressed
thermal topic with a raw RGB topic pairs like the node; undecodable messages are noted, not fatal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from psfusion_ros.evaluation.sources import Accumulator, BagSource, bag_items, topic_transports
from psfusion_ros.io.bags import BagReader, BagWriter, compressed_image_message, header, image_message
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.sync import ApproximateTimeSync

EPOCH_NS = 1_700_000_000_000_000_000


def test_a_mixed_transport_bag_pairs_like_the_node(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frames = {}
    with BagWriter(tmp_path / "bag") as bag:
        for k in range(5):
            t = EPOCH_NS + k * 100_000_000
            thermal = rng.integers(0, 65535, (24, 32), dtype=np.uint16)
            rgb = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            frames[t] = thermal
            msg = compressed_image_message(thermal, "png", header(t + 2_000_000, "th"))
            if k == 2:
                msg.data = msg.data[: len(msg.data) // 2]  # a truncated PNG: dropped and noted
            bag.write("/th/compressed", msg, t + 2_000_000)
            bag.write("/rgb", image_message(rgb, "rgb8", header(t, "rgb")), t)
    config = PipelineConfig()
    acc = Accumulator()
    with BagReader(tmp_path / "bag") as reader:
        assert topic_transports(reader, ["/th/compressed", "/rgb"]) == {"/th/compressed": "compressed", "/rgb": "raw"}
        sync = ApproximateTimeSync(2, config.sync.queue_size, config.sync.max_interval_ns)
        items = list(bag_items(reader, BagSource("/th/compressed", "/rgb", label_topic=""), config, acc, sync))
    assert len(acc.skipped) == 1 and "truncated PNG" in acc.skipped[0]
    assert 3 <= len(items) <= 4  # the RGB frame without its thermal partner pairs with a neighbour or not at all
    for item in items:
        stamp = item.pair.rgb.stamp_ns
        assert item.pair.thermal.pixels.dtype == np.uint16
        if stamp in frames and item.pair.thermal.stamp_ns == stamp + 2_000_000:
            assert np.array_equal(item.pair.thermal.pixels, frames[stamp])  # lossless
