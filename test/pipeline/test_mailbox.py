"""The one-slot mailbox between callbacks and the inference worker."""

from __future__ import annotations

import threading
import time

from psfusion_ros.pipeline.mailbox import LatestMailbox


def test_latest_wins_and_stale_items_are_counted() -> None:
    box: LatestMailbox[int] = LatestMailbox()
    assert box.put(1) is False
    assert box.put(2) is True and box.put(3) is True
    assert box.get(timeout=0) == 3 and box.replaced == 2
    assert box.get(timeout=0.01) is None


def test_a_slow_consumer_always_sees_the_freshest_item() -> None:
    box: LatestMailbox[int] = LatestMailbox()
    seen: list[int] = []

    def consumer() -> None:
        while (item := box.get(timeout=1.0)) is not None:
            seen.append(item)
            time.sleep(0.01)  # slower than the producer

    worker = threading.Thread(target=consumer)
    worker.start()
    for k in range(200):
        box.put(k)
        time.sleep(0.0005)
    time.sleep(0.05)
    box.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert seen[-1] == 199 and seen == sorted(seen)
    assert len(seen) + box.replaced == 200


def test_close_wakes_a_waiting_worker() -> None:
    box: LatestMailbox[int] = LatestMailbox()
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(box.get()))
    worker.start()
    time.sleep(0.05)
    box.close()
    worker.join(timeout=2)
    assert result == [None]
