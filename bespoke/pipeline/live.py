"""Scoring each epoch while the run trains: the loop's options from flags and bespoke.toml, and the judge.

`loop_options` turns what `train` / `sweep` were asked (flags over bespoke.toml's [train] table) into the run
loop's options (bespoke.run.loop.LoopOptions): the stop rule, the price, the budget and, with live scoring on,
the judge that scores each epoch as it lands.
"""

from __future__ import annotations

from dataclasses import dataclass

from bespoke.run.cost import Budget, Price, check_budget, check_price
from bespoke.run.loop import LoopOptions
from bespoke.run.stopping import parse_stop_rule
from bespoke.settings import TrainSettings


@dataclass(frozen=True)
class LoopRequest:
    """What the command line asked for (None: not given, bespoke.toml's [train] value applies)."""

    stop_when: str | None = None
    budget: float | None = None
    gpu_price: float | None = None
    live_score: bool | None = None
    gpus: int = 1  # GPUs one run holds (its price counts each)
    count_earlier_attempts: bool = True  # `train`: the budget counts what the run's earlier attempts cost


def loop_options(defaults: TrainSettings, request: LoopRequest) -> LoopOptions:
    """The run loop's options: each value from the flag, else bespoke.toml's [train] table."""
    price = check_price(request.gpu_price if request.gpu_price is not None else defaults.gpu_price_per_hour)
    budget = check_budget(request.budget if request.budget is not None else defaults.budget, price)
    given = request.stop_when is not None
    rule = parse_stop_rule(request.stop_when if given else defaults.stop_when,
                           "--stop-when" if given else "bespoke.toml [train] stop_when")
    return LoopOptions(judge=None, stop_when=rule, stop_explicit=given,
                       budget=Budget(budget, request.count_earlier_attempts) if budget is not None else None,
                       price=Price(price, max(1, request.gpus)) if price is not None else None)
