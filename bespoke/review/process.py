"""`bespoke process`: every sample -> 24 px candidates per method + colour metrics -> report.json/report.csv.

Samples stream through a process pool (one image in memory per worker); one bad sample becomes an entry
in "errors" and never stops the others. Outputs go to `<run>/candidates/<method>/` and `<run>/report/`
for a run folder, or to `<folder>/bespoke_process/` for a plain folder of images (never among the
user's images). Re-processing replaces bespoke's own candidates and report (they are derived files).
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

from bespoke.errors import ProcessError, UsageError, did_you_mean
from bespoke.fsutil import atomic_write_stream
from bespoke.dataset.layout import GRID, Layout

REPORT_SCHEMA = 1
REPORT_KIND = "bespoke.process"
PLAIN_OUTPUT = "bespoke_process"
DEFAULT_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid")
KNOWN_METHODS = ("nearest", "box", "bilinear", "lanczos", "grid", "grid-palette")
BEST_RULE = ("best method = highest % clean over all samples (ties: fewer mean colours); best epoch = the trained "
             "epoch (>= 1) where that method has the highest % clean (ties: fewer mean colours, then lower mean "
             "grid_error, then the earlier epoch); score = that % clean")
CSV_FIELDS = ("file", "name", "epoch", "step", "prompt_index", "seed", "width", "height", "colors_nearest",
              "top10_coverage", "clean", "grid_cell_w", "grid_cell_h", "grid_phase_x", "grid_phase_y",
              "grid_confidence", "grid_source", "method", "candidate_file", "colors", "candidate_top10_coverage",
              "candidate_clean", "off_palette", "grid_error", "background_uniform", "moved_pixels", "mean_move")


@dataclass(frozen=True)
class _Job:
    """Everything a worker needs besides the sample itself (sent once per worker)."""

    methods: tuple[str, ...]
    palette: object  # bespoke.palette.Palette | None
    merge: float | None
    layout: Layout | None
    base: Path  # paths in the report are relative to this
    candidates_dir: Path


def _layout_from_json(data) -> Layout | None:
    if not isinstance(data, dict) or "edges" not in data:
        return None
    try:
        return Layout(name=str(data.get("name", "stretch")), resolution=int(data["resolution"]),
                      grid=int(data.get("grid", GRID)), edges=tuple(int(e) for e in data["edges"]))
    except (KeyError, TypeError, ValueError):
        return None


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable {what} ({exc})") from exc


def resolve_palette(spec: str | None, run_dir: Path | None, manifest: dict | None):
    """The `--palette` request as a bespoke.palette.Palette (None without one)."""
    from bespoke.pixels import palette as pal

    parsed = pal.parse_spec(spec)
    if parsed is None:
        return None
    mode, k, folder = parsed
    if mode == "k":
        return pal.Palette("k", k=k)
    if mode == "folder":
        return pal.Palette("folder", colors=pal.palette_from_folder(folder))
    if run_dir is None:
        raise UsageError("--palette dataset needs a run folder (its run.json names the prepared dataset); "
                         "for a plain folder pass --palette <folder of 24 px PNGs> or --palette k:16")
    prepared = ((manifest or {}).get("dataset") or {}).get("prepared_dir")
    if not prepared:
        raise UsageError(f"{run_dir}/run.json: no dataset.prepared_dir to read the palette from; "
                         "pass --palette <folder of 24 px PNGs> or --palette k:16")
    report_path = Path(prepared) / "prepare.json"
    colors = _read_json(report_path, "prepare report").get("palette")
    if not isinstance(colors, list) or not colors:
        raise UsageError(f"{report_path}: no \"palette\" list; run `bespoke prepare` again")
    return pal.Palette("dataset", colors=pal.parse_hex(colors, str(report_path)))


def default_palette(run_dir: Path) -> str | None:
    """"dataset" when the run's run.json names a prepared dataset (its training palette), else None.

    What bespoke uses when it processes a run on its own (after train, sweep, review).
    """
    from bespoke.run.paths import is_run_dir, read_manifest

    if not is_run_dir(run_dir):
        return None
    return "dataset" if (read_manifest(run_dir).get("dataset") or {}).get("prepared_dir") else None


def parse_methods(methods, palette) -> tuple[str, ...]:
    """Validate method names; `grid-palette` is added when a palette is given and only allowed then."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    methods = list(dict.fromkeys(methods or DEFAULT_METHODS))
    for method in methods:
        if method not in KNOWN_METHODS:
            raise UsageError(f"unknown method {method!r}{did_you_mean(method, KNOWN_METHODS)}; "
                             f"choose from {', '.join(KNOWN_METHODS)}")
    if "grid-palette" in methods and palette is None:
        raise UsageError("method grid-palette needs --palette (dataset, k:<N> or a folder of 24 px PNGs)")
    if palette is not None and "grid-palette" not in methods:
        methods.append("grid-palette")
    return tuple(methods)


def _write_png(path: Path, arr) -> None:
    """A small derived image, written in place: no temp file and rename per candidate (thousands of them,
    and the rename costs more than the PNG). An interrupted run leaves no new report; re-run to redo."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buffer, "PNG")
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue())


_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _JOB
    _JOB = job


def _open_rgb(path: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            # an RGB image needs no conversion (convert would copy it)
            return img if img.mode == "RGB" else img.convert("RGB")
    except UnidentifiedImageError:
        raise ValueError("not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"truncated or corrupt image ({exc})") from None


def process_sample(item: tuple[str, str]) -> dict:
    """Process one sample (path, candidate stem) with the worker's job; returns its report entry or an error."""
    import numpy as np

    from bespoke.pixels import metrics as m
    from bespoke.pixels.downscale import PIL_METHODS, extract, moved, pil_downscale
    from bespoke.pixels.grid import find_grid

    job = _JOB
    path, stem = Path(item[0]), item[1]
    rel = _relative(path, job.base)
    try:
        img = _open_rgb(path)
        w, h = img.size
        if w < GRID or h < GRID:
            raise ValueError(f"too small ({w}x{h}); samples must be at least {GRID}x{GRID} px")
        if w != h:
            raise ValueError(f"not square ({w}x{h}); bespoke reads square samples of a {GRID}-cell grid")
        arr = np.asarray(img)
        near = m.nearest24(img)
        cn, cov = m.color_stats(near)
        grid = find_grid(arr, job.layout)
        ix, iy = m.upsample_index(grid.xs, w), m.upsample_index(grid.ys, h)
        pal_colors = job.palette.colors if job.palette is not None else None
        candidates, raw = {}, None
        for method in job.methods:
            if method in PIL_METHODS:
                out = near if method == "nearest" else pil_downscale(img, method)
                moved_px, mean_move = 0, 0.0
            else:
                palette = job.palette if method == "grid-palette" else None
                out, raw = extract(arr, grid, merge=job.merge, palette=palette, raw=raw)
                moved_px, mean_move = moved(raw, out)
            out = np.ascontiguousarray(out, dtype=np.uint8)
            target = job.candidates_dir / method / f"{stem}.png"
            _write_png(target, out)
            colors, coverage = m.color_stats(out)
            off = m.off_palette(out, pal_colors)
            candidates[method] = {
                "file": _relative(target, job.base), "colors": colors, "top10_coverage": round(coverage, 4),
                "clean": m.is_clean(colors, coverage), "off_palette": None if off is None else round(off, 4),
                "grid_error": round(m.grid_error(arr, out, ix, iy), 3),
                "background_uniform": m.background_uniform(out),
                "moved_pixels": moved_px, "mean_move": round(mean_move, 3),
            }
        return {"file": rel, "width": w, "height": h, "colors_nearest": cn, "top10_coverage": round(cov, 4),
                "clean": m.is_clean(cn, cov), "grid": grid.to_json(), "candidates": candidates}
    except (ValueError, OSError) as exc:
        return {"file": rel, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one odd image must never stop the others
        return {"file": rel, "error": f"cannot process ({type(exc).__name__}: {exc})"}


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(path).relative_to(base).as_posix()
    except ValueError:
        return str(path)


def _mean(values):
    values = [v for v in values if v is not None]
    return round(sum(values) / len(values), 4) if values else None


def _pct(flags):
    flags = list(flags)
    return round(100.0 * sum(bool(f) for f in flags) / len(flags), 1) if flags else None


def epoch_table(samples: list[dict], methods) -> list[dict]:
    """Per-epoch aggregates (trained epochs in order, then unknown epoch as null)."""
    groups: dict = {}
    for s in samples:
        groups.setdefault(s["epoch"], []).append(s)
    keys = sorted(k for k in groups if k is not None) + ([None] if None in groups else [])
    rows = []
    for epoch in keys:
        group = groups[epoch]
        row = {"epoch": epoch, "samples": len(group),
               "colors_nearest_mean": _mean(s["colors_nearest"] for s in group),
               "clean_pct": _pct(s["clean"] for s in group),
               "top10_coverage_mean": _mean(s["top10_coverage"] for s in group), "methods": {}}
        for method in methods:
            cands = [s["candidates"][method] for s in group if method in s["candidates"]]
            row["methods"][method] = {
                "colors_mean": _mean(c["colors"] for c in cands), "clean_pct": _pct(c["clean"] for c in cands),
                "off_palette_mean": _mean(c["off_palette"] for c in cands),
                "grid_error_mean": _mean(c["grid_error"] for c in cands),
                "background_uniform_pct": _pct(c["background_uniform"] for c in cands),
            }
        rows.append(row)
    return rows


def best_method(samples: list[dict], methods) -> str | None:
    """The method with the highest % clean over all samples (ties: fewer mean colours)."""
    scored = []
    for method in methods:
        cands = [s["candidates"][method] for s in samples if method in s["candidates"]]
        if cands:
            scored.append((-_pct(c["clean"] for c in cands), _mean(c["colors"] for c in cands), method))
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


def _write_csv(handle, samples: list[dict]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for s in samples:
        g = s["grid"]
        head = [s["file"], s["name"], s["epoch"], s["step"], s["prompt_index"], s["seed"], s["width"], s["height"],
                s["colors_nearest"], s["top10_coverage"], s["clean"], g["cell_w"], g["cell_h"], g["phase_x"],
                g["phase_y"], g["confidence"], g["source"]]
        for method, c in s["candidates"].items():
            writer.writerow(head + [method, c["file"], c["colors"], c["top10_coverage"], c["clean"], c["off_palette"],
                                    c["grid_error"], c["background_uniform"], c["moved_pixels"], c["mean_move"]])


def output_dirs(path: Path) -> tuple[Path, Path]:
    """(candidates dir, report dir) for a run folder or a plain folder."""
    from bespoke.run.paths import RunPaths, is_run_dir

    if is_run_dir(path):
        paths = RunPaths(path)
        return paths.candidates_dir, paths.report_dir
    return path / PLAIN_OUTPUT / "candidates", path / PLAIN_OUTPUT / "report"


def _stems(infos) -> list[str]:
    seen: dict[str, int] = {}
    for info in infos:
        seen[info.name] = seen.get(info.name, 0) + 1
    return [info.name if seen[info.name] == 1 else info.path.name.replace(".", "_") for info in infos]


def _iterate(items, job: _Job, workers: int):
    if workers <= 1 or len(items) < 4:
        _init_worker(job)
        yield from map(process_sample, items)
        return
    import multiprocessing

    # import the heavy modules once here, so forked workers start with them instead of each importing
    import bespoke.pixels.downscale
    import bespoke.pixels.grid
    import bespoke.pixels.metrics  # noqa: F401

    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
        yield from pool.imap(process_sample, items, chunksize=max(1, min(16, len(items) // (workers * 8))))


def process_path(path: Path, *, methods=DEFAULT_METHODS, palette: str | None = None, merge_threshold: float | None = None,
                 layout_hint: Layout | None = None, workers: int | None = None, progress: bool = True,
                 force: bool = False) -> dict:
    """Process every sample of a run folder or a folder of images; writes candidates and the report and
    returns the report dict. ProcessError when nothing could be processed.

    When the existing report was made with the same options from the same samples (none newer than it),
    it is returned as it is (`"reused": True`) and nothing is rewritten; `force` processes again.
    """
    from bespoke.run.paths import is_run_dir, now_iso, read_manifest
    from bespoke.review.samples import find_samples

    path = Path(path).expanduser()
    run_dir = path if is_run_dir(path) else None
    manifest = read_manifest(path) if run_dir is not None else None
    pal = resolve_palette(palette, run_dir, manifest)
    methods = parse_methods(methods, pal)
    if merge_threshold is not None and merge_threshold < 0:
        raise UsageError(f"--merge {merge_threshold}: must be 0 (off) or a positive delta E, e.g. 4")
    if layout_hint is None and manifest is not None:
        layout_hint = _layout_from_json((manifest.get("dataset") or {}).get("layout"))
    infos = find_samples(path)
    candidates_dir, report_dir = output_dirs(path)
    if not force:
        reused = _up_to_date_report(path, infos, methods, pal, merge_threshold, layout_hint)
        if reused is not None:
            return {**reused, "reused": True}
    created = [d for d in (candidates_dir.parent, candidates_dir, *(candidates_dir / m for m in methods))
               if not d.exists()]
    for method in methods:
        (candidates_dir / method).mkdir(parents=True, exist_ok=True)
    job = _Job(methods, pal, merge_threshold, layout_hint, path, candidates_dir)
    items = [(str(info.path), stem) for info, stem in zip(infos, _stems(infos), strict=True)]
    workers = workers if workers is not None else (os.cpu_count() or 1)

    samples, errors = [], []
    from bespoke.console import console

    bar = None
    if progress and console.is_terminal:  # a live bar in a log file is only blank lines
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       console=console, transient=True)
        task = bar.add_task("process", total=len(items))
        bar.start()
    try:
        for info, result in zip(infos, _iterate(items, job, workers), strict=False):
            if "error" in result:
                errors.append({"file": result["file"], "error": result["error"]})
            else:
                samples.append({
                    "file": result["file"], "name": info.name, "epoch": info.epoch, "step": info.step,
                    "prompt_index": info.prompt_index, "seed": info.seed, "prompt": info.prompt,
                    **{k: v for k, v in result.items() if k != "file"}})
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    if not samples:
        for folder in reversed(created):  # leave no empty output folders behind a failed run
            try:
                folder.rmdir()
            except OSError:
                pass
        first = errors[0] if errors else {"file": str(path), "error": "no samples"}
        raise ProcessError(f"{path}: none of {len(infos)} samples could be processed; "
                           f"e.g. {first['file']}: {first['error']}")
    epochs = epoch_table(samples, methods)
    report = {
        "schema_version": REPORT_SCHEMA, "kind": REPORT_KIND, "created_at": now_iso(), "source": str(path),
        "run_id": (manifest or {}).get("id"), "simulated": bool((manifest or {}).get("simulated", False)),
        "methods": list(methods), "palette": pal.to_json() if pal is not None else None,
        "merge_threshold": merge_threshold,
        "layout_hint": layout_hint.to_json() if layout_hint is not None else None,
        "samples": samples, "errors": errors, "epochs": epochs, "best": choose_best(samples, epochs, methods),
    }
    atomic_write_stream(report_dir / "report.csv", lambda handle: _write_csv(handle, samples), text=True)
    atomic_write_stream(report_dir / "report.json",
                        lambda handle: (json.dump(report, handle, indent=1, ensure_ascii=False), handle.write("\n")),
                        text=True)
    return report


def _up_to_date_report(path: Path, infos, methods, pal, merge_threshold, layout_hint) -> dict | None:
    """The existing report when it answers this very request (same options, same samples, none newer)."""
    try:
        report = load_report(path)
    except ProcessError:
        return None
    report_file = output_dirs(path)[1] / "report.json"
    same_options = (report.get("methods") == list(methods)
                    and report.get("palette") == (pal.to_json() if pal is not None else None)
                    and report.get("merge_threshold") == merge_threshold
                    and report.get("layout_hint") == (layout_hint.to_json() if layout_hint is not None else None))
    done = {s["file"] for s in report["samples"]} | {e["file"] for e in report["errors"]}
    files = {_relative(info.path, path) for info in infos}
    newest = max((info.path.stat().st_mtime for info in infos), default=0.0)
    candidates = all((path / c["file"]).is_file() for s in report["samples"] for c in s["candidates"].values())
    fresh = newest <= report_file.stat().st_mtime
    return report if same_options and done == files and fresh and candidates else None


def load_report(run_or_dir) -> dict:
    """The report.json written by process_path for a run folder or a plain folder."""
    path = Path(run_or_dir)
    report_path = output_dirs(path)[1] / "report.json"
    if not report_path.is_file():
        raise ProcessError(f"{report_path}: no process report; run `bespoke process {path}`")
    try:
        data = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ProcessError(f"{report_path}: unreadable report ({exc}); run `bespoke process {path}` again") from exc
    if data.get("kind") != REPORT_KIND or data.get("schema_version") != REPORT_SCHEMA:
        raise ProcessError(f"{report_path}: not a bespoke process report of schema {REPORT_SCHEMA}; "
                           f"run `bespoke process {path}` again")
    return data
