"""Approximate time synchronization with the semantics of message_filters' C++ ApproximateTime policy.

The policy (Willow Garage's algorithm) keeps one queue per input. Whenever every queue is non-empty it
forms the set of queue heads; the input whose head is latest becomes the *pivot*, and the best set that
contains the pivot's message is kept as a candidate. The candidate is published as soon as no later
message can form a smaller set: sets are published in strictly increasing time, each message is used at
most once, and older unmatched messages are discarded. ``age_penalty`` (0.1) slightly prefers
publishing earlier. This is our implementation of that algorithm, plus:

* ``push`` returns the completed sets to the caller instead of calling back under a lock, so the caller
  decides what runs where (the node hands them to a worker);
* a stamp more than ``reset_on_jump_back_ns`` (1 s) older than the newest stamp on its input means a bag
  loop or simulator reset: the queues are cleared instead of stalling until time catches up;
* counters for matched sets and per-input drops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from psfusion_ros.errors import ConfigError

NS_PER_SECOND = 1_000_000_000
JUMP_BACK_RESET_NS = NS_PER_SECOND

Stamped = tuple[int, Any]  # (stamp_ns, item)


@dataclass
class SyncStats:
    """Counters since construction (``reset`` does not clear them)."""

    matched: int = 0
    received: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    resets: int = 0
    out_of_order: list[int] = field(default_factory=list)


class ApproximateTimeSync:
    """Pairs (or n-tuples) of messages whose stamps are close, like the C++ ApproximateTime policy.

    ``push(index, stamp_ns, item)`` returns the list of sets completed by that message; each set is a
    tuple with one ``(stamp_ns, item)`` per input, in input order. ``max_interval_ns`` bounds the spread
    of a set (None: unbounded). ``queue_size`` bounds what is kept per input.
    """

    def __init__(
        self,
        num_inputs: int,
        queue_size: int,
        max_interval_ns: int | None = None,
        age_penalty: float = 0.1,
        reset_on_jump_back_ns: int | None = JUMP_BACK_RESET_NS,
    ) -> None:
        if num_inputs < 2:
            raise ConfigError("ApproximateTimeSync needs at least two inputs")
        if queue_size < 1:
            raise ConfigError("queue_size must be at least 1 (2 or more recommended)")
        if max_interval_ns is not None and max_interval_ns < 0:
            raise ConfigError("max_interval_ns must be non-negative")
        self.num_inputs = num_inputs
        self.queue_size = queue_size
        self.max_interval_ns = max_interval_ns
        self.age_penalty = age_penalty
        self.reset_on_jump_back_ns = reset_on_jump_back_ns
        self.stats = SyncStats(
            received=[0] * num_inputs, dropped=[0] * num_inputs, out_of_order=[0] * num_inputs
        )
        self._clear()

    # -- public API -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every queued message (they count as dropped)."""
        for i, held in enumerate(self.pending()):
            self.stats.dropped[i] += held
        self._clear()

    def _clear(self) -> None:
        self._queues: list[deque[Stamped]] = [deque() for _ in range(self.num_inputs)]
        self._past: list[list[Stamped]] = [[] for _ in range(self.num_inputs)]
        self._non_empty = 0
        self._pivot: int | None = None
        self._pivot_time = 0
        self._candidate: tuple[Stamped, ...] | None = None
        self._candidate_start = 0
        self._candidate_end = 0
        self._has_dropped = [False] * self.num_inputs
        self._latest = [None] * self.num_inputs
        self._out: list[tuple[Stamped, ...]] = []

    def push(self, index: int, stamp_ns: int, item: Hashable | Any = None) -> list[tuple[Stamped, ...]]:
        """Add one message; returns the sets this message completed (usually zero or one)."""
        if not 0 <= index < self.num_inputs:
            raise IndexError(f"input index {index} out of range 0..{self.num_inputs - 1}")
        stamp_ns = int(stamp_ns)
        latest = self._latest[index]
        if latest is not None and stamp_ns < latest:
            if self.reset_on_jump_back_ns is not None and latest - stamp_ns > self.reset_on_jump_back_ns:
                self.reset()
                self.stats.resets += 1
            else:
                self.stats.out_of_order[index] += 1
        self._latest[index] = stamp_ns if self._latest[index] is None else max(stamp_ns, self._latest[index])
        self.stats.received[index] += 1

        self._out = []
        q = self._queues[index]
        q.append((stamp_ns, item))
        if len(q) == 1:
            self._non_empty += 1
            if self._non_empty == self.num_inputs:
                self._process()
        if len(q) + len(self._past[index]) > self.queue_size:
            # Too many messages on this input: abandon the candidate search and drop its oldest.
            self._recover_all()
            q.popleft()
            self.stats.dropped[index] += 1
            self._has_dropped[index] = True
            if self._pivot is not None:
                self._candidate = None
                self._pivot = None
                self._process()
        out, self._out = self._out, []
        return out

    def flush(self) -> list[tuple[Stamped, ...]]:
        """End of stream (end of a bag): publish what no future message can improve any more."""
        self._out = []
        while True:
            published = len(self._out)
            if self._candidate is not None:
                self._publish_candidate()
            if self._non_empty == self.num_inputs:
                self._process()
            if len(self._out) == published and self._candidate is None:
                break
        out, self._out = self._out, []
        return out

    def pending(self) -> list[int]:
        """Messages held per input (queued + set aside during a candidate search)."""
        return [len(q) + len(p) for q, p in zip(self._queues, self._past)]

    # -- the policy -------------------------------------------------------------------------------
    def _count_non_empty(self) -> None:
        self._non_empty = sum(1 for q in self._queues if q)

    def _drop_front(self, i: int) -> None:
        self._queues[i].popleft()
        self.stats.dropped[i] += 1
        if not self._queues[i]:
            self._non_empty -= 1

    def _move_front_to_past(self, i: int) -> None:
        self._past[i].append(self._queues[i].popleft())
        if not self._queues[i]:
            self._non_empty -= 1

    def _recover(self, i: int, count: int | None = None) -> None:
        past, q = self._past[i], self._queues[i]
        n = len(past) if count is None else count
        for _ in range(n):
            q.appendleft(past.pop())

    def _recover_all(self, counts: list[int] | None = None) -> None:
        for i in range(self.num_inputs):
            self._recover(i, None if counts is None else counts[i])
        self._count_non_empty()

    def _make_candidate(self) -> None:
        self._candidate = tuple(q[0] for q in self._queues)
        for i, past in enumerate(self._past):  # a better candidate makes the set-aside messages useless
            self.stats.dropped[i] += len(past)
            past.clear()

    def _publish_candidate(self) -> None:
        assert self._candidate is not None
        self._out.append(self._candidate)
        self.stats.matched += 1
        self._candidate = None
        self._pivot = None
        for i in range(self.num_inputs):  # bring set-aside messages back, remove the published ones
            self._recover(i)
            self._queues[i].popleft()
        self._count_non_empty()

    @staticmethod
    def _bounds(times: list[int]) -> tuple[int, int, int, int]:
        """(start_index, start_time, end_index, end_time); ties: first earliest, last latest (as in C++)."""
        start = min(range(len(times)), key=times.__getitem__)
        end = max(range(len(times)), key=lambda i: (times[i], i))
        return start, times[start], end, times[end]

    def _heads(self) -> tuple[int, int, int, int]:
        return self._bounds([q[0][0] for q in self._queues])

    def _virtual_bounds(self) -> tuple[int, int, int, int]:
        """Like ``_heads`` but an empty queue counts as a message arriving at the pivot time."""
        return self._bounds(
            [q[0][0] if q else max(self._past[i][-1][0], self._pivot_time) for i, q in enumerate(self._queues)]
        )

    def _worse_or_equal(self, start: int, end: int) -> bool:
        return (end - self._candidate_end) * (1 + self.age_penalty) >= start - self._candidate_start

    def _process(self) -> None:
        while self._non_empty == self.num_inputs:
            start_i, start_t, end_i, end_t = self._heads()
            for i in range(self.num_inputs):
                if i != end_i:
                    self._has_dropped[i] = False
            if self._pivot is None:
                if self.max_interval_ns is not None and end_t - start_t > self.max_interval_ns:
                    self._drop_front(start_i)  # spread too large to ever be a valid set
                    continue
                if self._has_dropped[end_i]:
                    self._drop_front(start_i)  # a dropped message could have been better: bad pivot
                    continue
                self._make_candidate()
                self._candidate_start, self._candidate_end = start_t, end_t
                self._pivot, self._pivot_time = end_i, end_t
                self._move_front_to_past(start_i)
            else:
                if self._worse_or_equal(start_t, end_t):
                    self._move_front_to_past(start_i)
                else:
                    self._make_candidate()
                    self._candidate_start, self._candidate_end = start_t, end_t
                    self._move_front_to_past(start_i)

            if start_i == self._pivot:
                self._publish_candidate()  # every candidate containing the pivot has been seen
            elif (end_t - self._candidate_end) * (1 + self.age_penalty) >= self._pivot_time - self._candidate_start:
                self._publish_candidate()  # any later set spans [pivot_time, end_t]: provably worse
            elif self._non_empty < self.num_inputs:
                self._virtual_search()

    def _virtual_search(self) -> None:
        """Optimistically assume the missing inputs arrive at the pivot time; publish if still optimal."""
        moves = [0] * self.num_inputs
        while True:
            start_i, start_t, _, end_t = self._virtual_bounds()
            if (end_t - self._candidate_end) * (1 + self.age_penalty) >= self._pivot_time - self._candidate_start:
                self._publish_candidate()
                return
            if not self._worse_or_equal(start_t, end_t):
                self._recover_all(moves)  # an optimistic future set could still win: wait
                return
            self._move_front_to_past(start_i)
            moves[start_i] += 1
