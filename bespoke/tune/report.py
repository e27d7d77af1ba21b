"""`bespoke tune report STUDY`: every trial (settings, score and its interval, best epoch, pruned at, cost), the
best trial and its margin over the runner-up, Optuna's parameter importances, and one review page of the top
trials' runs (bespoke.review.build.review_runs, the page `bespoke review` writes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bespoke.errors import BespokeError
from bespoke.review.build import review_runs
from bespoke.tune.study import COST, RUN_DIR, Study, optuna_module

MIN_FOR_IMPORTANCE = 2  # completed trials Optuna's importance needs (and every parameter varied among them)
TOP = 3


@dataclass
class TrialRow:
    number: int
    state: str
    params: dict
    value: float | None
    low: float | None
    high: float | None
    best_epoch: int | None
    pruned_at: int | None
    cost_usd: float | None
    run_dir: str | None
    run_id: str | None
    reason: str | None

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class TuneReport:
    study: str
    direction: str
    objective: str
    rows: list[TrialRow]
    best: int | None = None
    runner_up: int | None = None
    margin: float | None = None  # how much better the best is than the runner-up (in the objective's units)
    importances: dict[str, float] = field(default_factory=dict)
    importance_note: str | None = None
    review: Path | None = None
    cost_usd: float = 0.0

    def to_json(self) -> dict:
        return {"study": self.study, "direction": self.direction, "objective": self.objective,
                "trials": [r.to_json() for r in self.rows], "best": self.best, "runner_up": self.runner_up,
                "margin": self.margin, "importances": self.importances, "importance_note": self.importance_note,
                "review": str(self.review) if self.review else None, "cost_usd": self.cost_usd}


def _row(trial: Any) -> TrialRow:
    attrs = trial.user_attrs
    return TrialRow(trial.number, trial.state.name, dict(trial.params), trial.value, attrs.get("score_low"),
                    attrs.get("score_high"), attrs.get("best_epoch"), attrs.get("pruned_at"), attrs.get(COST),
                    attrs.get(RUN_DIR), attrs.get("run_id"), attrs.get("fail_reason") or attrs.get("interrupted"))


def ranked(study: Study) -> list[Any]:
    """The completed trials, best first."""
    optuna = optuna_module()
    done = study.optuna.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    sign = -1.0 if study.space.direction == "maximize" else 1.0
    return sorted(done, key=lambda t: (sign * float(t.value), t.number))


def importances(study: Study, done: list) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances, or why there are none yet."""
    optuna = optuna_module()
    if len(done) < MIN_FOR_IMPORTANCE:
        return {}, f"importances need at least {MIN_FOR_IMPORTANCE} completed trials ({len(done)} so far)"
    try:
        found = optuna.importance.get_param_importances(study.optuna)
    except (RuntimeError, ValueError) as error:
        return {}, f"no importances yet: {error}"
    return {k: round(float(v), 4) for k, v in found.items()}, None


def tune_report(study: Study, review: bool = True) -> TuneReport:
    """The report of a study (see the module docstring); `review` builds the page of the top trials."""
    trials = study.optuna.get_trials(deepcopy=False)
    rows = [_row(t) for t in trials]
    done = ranked(study)
    report = TuneReport(study.space.name, study.space.direction, study.space.objective, rows,
                        cost_usd=round(sum(r.cost_usd or 0.0 for r in rows), 4))
    if done:
        report.best = done[0].number
    if len(done) > 1:
        report.runner_up = done[1].number
        report.margin = round(abs(float(done[0].value) - float(done[1].value)), 6)
    report.importances, report.importance_note = importances(study, done)
    runs = [Path(t.user_attrs[RUN_DIR]) for t in done[:TOP] if t.user_attrs.get(RUN_DIR)]
    if review and runs:
        try:
            report.review = review_runs(runs, out_dir=study.folder / "review").html
        except BespokeError as error:
            report.importance_note = (report.importance_note or "") + f" (no review page: {error})"
    return report
