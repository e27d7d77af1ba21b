"""What training costs: wall time x the price of the GPUs it holds, and the budget a command may spend.

The price is per GPU-hour (`--gpu-price`, or `gpu_price_per_hour` in bespoke.toml's [train] table); a run
holds one GPU unless it was given several (`train --gpus 0,1`). Everything the run's GPUs were held for counts:
the model load before the first epoch goes into the first epoch's time, the final save into the attempt's.
A `Budget` is shared by everything one command starts (a sweep's runs, one per GPU at once), so its spending
is counted under a lock; `train` counts what the run's earlier attempts cost too.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from bespoke.errors import UsageError


@dataclass(frozen=True)
class Price:
    """USD per GPU-hour, times the GPUs a run holds."""

    per_gpu_hour: float
    gpus: int = 1

    def of(self, seconds: float) -> float:
        return round(max(seconds, 0.0) / 3600.0 * self.per_gpu_hour * self.gpus, 4)


def check_price(value: float | None, source: str = "--gpu-price") -> float | None:
    """A price per GPU-hour (USD): a finite number, 0 or more; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{source} {value!r}: the price of one GPU for one hour in USD, e.g. 1.89")
    return float(value)


def check_budget(value: float | None, price: float | None, source: str = "--budget") -> float | None:
    """A budget in USD (more than 0); it needs a price to count against."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{source} {value!r}: the most to spend in USD, more than 0, e.g. 5")
    if price is None:
        raise UsageError(f"{source} needs a price to count against: give --gpu-price USD (per GPU-hour) or set "
                         "gpu_price_per_hour in bespoke.toml's [train] table")
    return float(value)


class Budget:
    """The most one command may spend, and what it has spent so far (thread-safe)."""

    def __init__(self, limit_usd: float, include_earlier_attempts: bool = False):
        self.limit_usd = float(limit_usd)
        self.include_earlier_attempts = include_earlier_attempts  # `train`: the run's earlier attempts count
        self._spent = 0.0
        self._lock = threading.Lock()

    def charge(self, usd: float) -> None:
        with self._lock:
            self._spent += max(usd, 0.0)

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def exhausted(self) -> bool:
        """Nothing is left to spend."""
        return self.spent >= self.limit_usd

    def would_pass(self, next_usd: float) -> bool:
        """True when spending `next_usd` more would go over the limit."""
        return self.spent + next_usd > self.limit_usd


def usd(value: float | None) -> str:
    """'$1.23' ('-' for None); amounts under a cent keep their cents' fraction ('$0.004')."""
    if value is None:
        return "-"
    return f"${value:.2f}" if value >= 0.01 or value == 0 else f"${value:.3f}"
