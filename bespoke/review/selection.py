"""Which epoch is best, and with which candidate method: the rule, stated in every report."""

from __future__ import annotations

from bespoke.review.report import mean_of, pct_of

BEST_RULE = ("best method = highest % clean over all samples (ties: fewer mean colours); best epoch = the trained "
             "epoch (>= 1) where that method has the highest % clean (ties: fewer mean colours, then lower mean "
             "grid_error, then the earlier epoch); score = that % clean")


def best_method(samples: list[dict], methods) -> str | None:
    """The method with the highest % clean over all samples (ties: fewer mean colours)."""
    scored = []
    for method in methods:
        cands = [s["candidates"][method] for s in samples if method in s["candidates"]]
        if cands:
            scored.append((-pct_of(c["clean"] for c in cands), mean_of(c["colors"] for c in cands), method))
    return min(scored)[2] if scored else None


def choose_best(samples: list[dict], epochs: list[dict], methods) -> dict | None:
    """The best epoch and method by BEST_RULE; None when no trained epoch (>= 1) was sampled."""
    method = best_method(samples, methods)
    rows = [r for r in epochs if r["epoch"] is not None and r["epoch"] >= 1 and method in r["methods"]]
    if method is None or not rows:
        return None

    def key(row):
        stats = row["methods"][method]
        return (-(stats["clean_pct"] or 0), stats["colors_mean"] or 0, stats["grid_error_mean"] or 0, row["epoch"])

    row = min(rows, key=key)
    return {"epoch": row["epoch"], "method": method, "rule": BEST_RULE, "score": row["methods"][method]["clean_pct"]}
