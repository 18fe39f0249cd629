"""The reference's learning-rate schedule (``optimizer.py``): exponential warm-up, then polynomial decay."""

from __future__ import annotations

from dataclasses import dataclass

from psfusion_ros.constants import POLY_POWER, WARMUP_START_LR


@dataclass(frozen=True)
class WarmupPoly:
    """lr(it) for the optimizer step ``it`` (0-based, the reference's ``Optimizer.it`` before the step).

    During warm-up, lr grows geometrically from ``start_lr`` to ``lr`` over ``warmup_steps`` steps; then it decays
    as ``lr * (1 - progress) ** power`` to 0 at ``max_iter``. ``warmup_steps=0`` is plain poly decay (the
    reference divides by zero there).
    """

    lr: float
    max_iter: int
    warmup_steps: int
    start_lr: float = WARMUP_START_LR
    power: float = POLY_POWER

    def __call__(self, it: int) -> float:
        if self.warmup_steps and it <= self.warmup_steps:
            return self.start_lr * (self.lr / self.start_lr) ** (it / self.warmup_steps)
        span = max(self.max_iter - self.warmup_steps, 1)
        progress = min(max(it - self.warmup_steps, 0) / span, 1.0)
        return self.lr * (1.0 - progress) ** self.power
