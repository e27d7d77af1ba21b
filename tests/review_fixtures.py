"""Helpers for the review tests: hand-made run folders, simulated samples, and a stand-in process report.

`fake_process` writes report.json through bespoke's own writer (typed records, so the real schema by
construction) from the images on disk with plain Pillow NEAREST candidates, so sheets/HTML/review are tested
independently of the extractor's quality.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from manifest_helpers import write_run_json
from PIL import Image

from bespoke.review.records import (
    Best,
    Candidate,
    EpochRow,
    MethodRow,
    ProcessReport,
    Sample,
    SampleGrid,
    Score,
    Scoring,
)
from bespoke.review.report import write_report
from bespoke.review.selection import ANALYSIS_VERSION
from bespoke.run.paths import RunPaths

PROMPTS = [
    "pixel art, 24x24, portrait of bespoke punk lad, brown hair, bright green background",
    "pixel art, 24x24, portrait of bespoke punk lady, black hair, blue solid background",
    "pixel art, 24x24, portrait of bespoke punk lad, blonde hair, wearing black stunner shades",
    "pixel art, 24x24, portrait of bespoke punk lady, red hair, wearing golden earrings",
]


def make_planned_run(outputs: Path, run_id: str, resolution: int = 64, prompts: int = 3, epochs: int = 3) -> Path:
    """A planned run folder as plan_run leaves it (run.json, config/), written by hand."""
    run_dir = Path(outputs) / run_id
    paths = RunPaths(run_dir)
    paths.config_dir.mkdir(parents=True)
    lines = [f"{PROMPTS[i % len(PROMPTS)]} --w {resolution} --h {resolution} --d {i + 1} --s 30 --l 7.5"
             for i in range(prompts)]
    paths.prompts_txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    paths.training_toml.write_text(f'output_name = "{run_id}"\nmax_train_epochs = {epochs}\n'
                                   f'resolution = "{resolution},{resolution}"\n', encoding="utf-8")
    write_run_json(run_dir, **{
        "id": run_id, "status": "planned", "resolution": resolution, "preset": None, "layout": "stretch",
        "output_name": run_id, "num_epochs": epochs, "argv": ["accelerate", "launch", "train_network.py"],
        "env_overrides": {}, "sd_scripts_commit": None, "dataset": {"name": "synthetic"},
    })
    return run_dir


_SAMPLE = re.compile(
    r"^(?:(?P<name>.*)_)?(?:e(?P<epoch>\d{6,})|(?P<step>\d{6,}))_(?P<prompt>\d{2,})_(?P<ts>\d{14})(?:_(?P<seed>\d+))?\.png$"
)


def fake_process(run_dir: Path, method: str = "grid", best_epoch: int | None = None) -> ProcessReport:
    """Write report.json of the real schema from the samples on disk (NEAREST candidates); returns it."""
    from bespoke.demo.simulator import read_prompt_file
    from bespoke.pixels.metrics import colors_nearest, is_clean, nearest24, top10_coverage, unique_colors
    from bespoke.review.build import sample_files

    run_dir = Path(run_dir)
    paths = RunPaths(run_dir)
    prompts = {p.index: p.prompt for p in read_prompt_file(paths.prompts_txt)} if paths.prompts_txt.exists() else {}
    samples = []
    for path in sample_files(run_dir):
        match = _SAMPLE.match(path.name)
        with Image.open(path) as img:
            img = img.convert("RGB")
            small = nearest24(img)
            cn = colors_nearest(img)
        cand_path = paths.candidates_dir / method / f"{path.stem}.png"
        cand_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(small, "RGB").save(cand_path)
        cov = top10_coverage(small)
        colors = unique_colors(small)
        prompt_index = int(match["prompt"]) if match else None
        candidate = Candidate(file=cand_path.relative_to(run_dir).as_posix(), colors=colors,
                              top10_coverage=round(cov, 3), clean=is_clean(colors, cov), off_palette=None,
                              grid_error=10.0, background_uniform=False, delta_e_max=0.0, delta_e_mean=0.0,
                              moved_beyond=0, novelty=None)
        samples.append(Sample(
            file=path.relative_to(run_dir).as_posix(), name=path.stem,
            epoch=int(match["epoch"]) if match and match["epoch"] else None,
            step=int(match["step"]) if match and match["step"] else None,
            prompt_index=prompt_index, seed=int(match["seed"]) if match and match["seed"] else None,
            prompt=prompts.get(prompt_index), width=img.width, height=img.height,
            colors_nearest=cn, top10_coverage=round(cov, 3), clean=is_clean(cn, cov), degenerate=None,
            grid=SampleGrid(cell_w=img.width / 24, cell_h=img.height / 24, phase_x=0, phase_y=0, cells_x=24,
                            cells_y=24, confidence=0.5, source="fixture"),
            candidates={method: candidate},
            scoring=Scoring(colors=colors, grid_error=10.0, off_palette=None, novelty=None),
        ))
    epochs = []
    for epoch in sorted({s.epoch for s in samples if s.epoch is not None}):
        group = [s for s in samples if s.epoch == epoch]
        cands = [s.candidates[method] for s in group]
        colors_mean = float(np.mean([c.colors for c in cands]))
        epochs.append(EpochRow(
            epoch=epoch, samples=len(group),
            colors_nearest_mean=round(float(np.mean([s.colors_nearest for s in group])), 1),
            clean_pct=100.0 * sum(s.clean for s in group) / len(group),
            top10_coverage_mean=round(float(np.mean([s.top10_coverage for s in group])), 3),
            degenerate_pct=0.0, near_copy_pct=None, diversity=1.0,
            score=Score(total=round(1.0 / (1.0 + colors_mean), 4), terms={"fixture": 0.0}),
            methods={method: MethodRow(
                colors_mean=round(colors_mean, 1), clean_pct=100.0 * sum(c.clean for c in cands) / len(cands),
                off_palette_mean=None, grid_error_mean=10.0, background_uniform_pct=0.0, delta_e_max=0.0,
                delta_e_mean=0.0, moved_beyond=0, near_copy_pct=None)},
        ))
    if best_epoch is None and epochs:
        best_epoch = min(epochs, key=lambda e: e.colors_nearest_mean or 0).epoch
    manifest = json.loads(paths.run_json.read_text()) if paths.run_json.exists() else {}
    report = ProcessReport(
        created_at="2026-11-22T00:00:00+00:00", source=str(run_dir), run_id=manifest.get("id", run_dir.name),
        simulated=bool(manifest.get("simulated")), methods=[method], palette=None, tolerance=5.0,
        near_copy_threshold=0.8, novelty_tolerance=8.0, training=None, layout_hint=None,
        samples=samples, errors=[], epochs=epochs, analysis_version=ANALYSIS_VERSION,
        best=Best(epoch=best_epoch, method=method, rule="fixture: lowest mean colours", score=0.0,
                  terms={"fixture": 0.0}) if best_epoch is not None else None,
    )
    write_report(paths.report_dir, report)
    return report


def simulated_run(outputs: Path, run_id: str, resolution: int = 64, prompts: int = 3, epochs: int = 3,
                  process: bool = True) -> Path:
    """A planned run, simulated, and (optionally) fake-processed."""
    from bespoke.demo.simulator import simulate_run

    run_dir = make_planned_run(outputs, run_id, resolution, prompts, epochs)
    simulate_run(run_dir)
    if process:
        fake_process(run_dir)
    return run_dir
