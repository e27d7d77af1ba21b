"""Several runs from data: a resolution list or a sweep TOML (`kohya_configs/sweep-*.toml`).

Runs one after another, or one per GPU at once (`gpus`), or this machine's deterministic share of them
(`shard` i/n: sorted by run id, every n-th starting at the i-th). A failed run never stops the sweep; a
finished run is skipped; Ctrl-C stops everything and marks the running runs interrupted.
"""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import toml

from bespoke.errors import ConfigError, UsageError, did_you_mean

_RUN_KEYS = ("resolution", "preset", "overrides", "name")
_TOP_KEYS = ("description", "preset", "overrides", "run")


@dataclass(frozen=True)
class SweepEntry:
    """One run of a sweep: what `plan` gets."""

    resolution: int
    preset: str | None = None
    overrides: tuple[str, ...] = ()
    name: str | None = None


@dataclass
class SweepRow:
    """One line of the comparison table."""

    run_id: str
    run_dir: Path | None
    resolution: int | None
    preset: str | None
    status: str
    epochs_done: int = 0
    epochs_total: int | None = None
    duration: float | None = None
    final_loss: float | None = None
    best_epoch: int | None = None
    mean_colors: float | None = None
    reason: str | None = None
    gpu: str | None = None
    skipped: bool = False
    log_tail: list[str] = field(default_factory=list)


def parse_resolutions(text: str) -> tuple[int, ...]:
    """'512,256' -> (512, 256), with a clear error for anything else."""
    from bespoke.dataset.layout import RESOLUTIONS

    out = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        if not part.isdigit() or int(part) not in RESOLUTIONS:
            raise UsageError(f"-r {text}: {part!r} is not one of {', '.join(map(str, RESOLUTIONS))}")
        out.append(int(part))
    if not out:
        raise UsageError("-r: give at least one resolution, e.g. -r 512,256,128,64")
    return tuple(out)


def parse_gpus(text: str | None) -> tuple[str, ...]:
    """'0,1' -> ('0', '1'); duplicates and non-numbers are errors."""
    if not text:
        return ()
    ids = tuple(p.strip() for p in text.split(",") if p.strip())
    if not ids or any(not i.isdigit() for i in ids) or len(set(ids)) != len(ids):
        raise UsageError(f"--gpus {text}: give distinct GPU indices like 0,1,2")
    return ids


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """'2/4' -> (2, 4); i is 1-based and 1 <= i <= n."""
    if not text:
        return None
    i, sep, n = text.partition("/")
    if not sep or not i.strip().isdigit() or not n.strip().isdigit() or not 1 <= int(i) <= int(n):
        raise UsageError(f"--shard {text}: write i/n with 1 <= i <= n, e.g. --shard 2/4")
    return int(i), int(n)


def shard_items(items: list, shard: tuple[int, int] | None, key=lambda x: x) -> list:
    """This machine's share: sorted by `key`, the i-th of every n (round-robin, i 1-based)."""
    ordered = sorted(items, key=key)
    if shard is None:
        return ordered
    i, n = shard
    return ordered[i - 1::n]


def _override_text(key: str, value) -> str:
    rendered = toml.dumps({"v": value}).strip()
    return f"{key}={rendered.partition('=')[2].strip()}"


def _overrides(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, dict):
        return tuple(_override_text(k, v) for k, v in value.items())
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: overrides must be a table (key = value) or a list of \"key=value\" strings")


def load_sweep_file(path: Path) -> list[SweepEntry]:
    """Read a sweep TOML: optional top-level preset/overrides, then `[[run]]` tables (resolution required)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep file not found (see kohya_configs/sweep-*.toml for examples)")
    try:
        data = toml.load(path)
    except (toml.TomlDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}{did_you_mean(key, _TOP_KEYS)}")
    runs = data.get("run")
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{path}: no [[run]] tables; add at least one with resolution = 512")
    default_preset = data.get("preset")
    shared = _overrides(data.get("overrides"), f"{path}: overrides")
    entries = []
    for index, run in enumerate(runs, 1):
        where = f"{path}: [[run]] #{index}"
        for key in run:
            if key not in _RUN_KEYS:
                raise ConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, _RUN_KEYS)}")
        resolution = run.get("resolution")
        if not isinstance(resolution, int) or isinstance(resolution, bool):
            raise ConfigError(f"{where}: resolution must be an integer like 512")
        from bespoke.dataset.layout import RESOLUTIONS

        if resolution not in RESOLUTIONS:
            raise ConfigError(f"{where}: resolution {resolution} is not one of {', '.join(map(str, RESOLUTIONS))}")
        preset = run.get("preset", default_preset)
        if preset is not None and not isinstance(preset, str):
            raise ConfigError(f"{where}: preset must be a preset name string")
        entries.append(SweepEntry(resolution, preset, shared + _overrides(run.get("overrides"), where),
                                  run.get("name")))
    return entries


def sweep_entries(resolutions: tuple[int, ...] | None, preset: str | None, overrides: tuple[str, ...],
                  sweep_file: Path | None) -> list[SweepEntry]:
    """The runs of a sweep: from the file (filtered by `resolutions` when given) or one per resolution.

    `preset` fills entries without their own; `overrides` (--set) are applied last, so they win.
    """
    if sweep_file is not None:
        entries = load_sweep_file(sweep_file)
        if resolutions:
            entries = [e for e in entries if e.resolution in resolutions]
            if not entries:
                raise UsageError(f"{sweep_file}: no run has a resolution in -r {','.join(map(str, resolutions))}")
        return [SweepEntry(e.resolution, e.preset or preset, e.overrides + tuple(overrides), e.name)
                for e in entries]
    return [SweepEntry(r, preset, tuple(overrides)) for r in (resolutions or (512, 256, 128, 64))]


def report_summary(run_dir: Path) -> tuple[int | None, float | None]:
    """(best epoch, mean colors_nearest of that epoch) from `<run>/report/report.json` when `process` made one."""
    path = Path(run_dir) / "report" / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None
    best = report.get("best") or {}
    epoch = best.get("epoch")
    colors = next((e.get("colors_nearest_mean") for e in report.get("epochs") or []
                   if e.get("epoch") == epoch and epoch is not None), None)
    return epoch, colors


def row_from_manifest(run_dir: Path, manifest: dict) -> SweepRow:
    """A table row from a run's run.json (+ report.json)."""
    best, colors = report_summary(run_dir)
    return SweepRow(
        run_id=manifest.get("id", Path(run_dir).name), run_dir=Path(run_dir), resolution=manifest.get("resolution"),
        preset=manifest.get("preset"), status=manifest.get("status", "?"),
        epochs_done=manifest.get("epochs_done") or 0, epochs_total=manifest.get("epochs_total"),
        duration=manifest.get("duration_s"), final_loss=manifest.get("final_loss"), best_epoch=best,
        mean_colors=colors, reason=manifest.get("reason"),
    )


def plan_entries(settings, entries: list[SweepEntry], dataset: Path, create: bool = True) -> list:
    """Plan every entry (planning writes or finds each run folder; `create=False` only computes the run ids)."""
    from bespoke.run.plan import PlanRequest, plan_run

    plans = []
    for entry in entries:
        request = PlanRequest(resolution=entry.resolution, dataset=dataset, preset=entry.preset,
                              overrides=tuple(entry.overrides))
        plans.append(plan_run(settings, request, create=create))
    return plans


class SweepRunner:
    """Runs planned run folders sequentially or one per GPU, collecting a `SweepRow` per run."""

    def __init__(self, settings, console, quiet: bool = False, restart: bool = False,
                 stop_timeouts: tuple[float, float] = (10.0, 5.0), base_env: dict | None = None):
        self.settings = settings
        self.console = console
        self.quiet = quiet
        self.restart = restart
        self.stop_timeouts = stop_timeouts
        self.base_env = base_env
        self.stop = threading.Event()

    def _one(self, run_dir: Path, gpu: str | None, progress, view) -> SweepRow:
        from bespoke.errors import BespokeError
        from bespoke.run.paths import read_manifest
        from bespoke.run.train import train_run

        try:
            result = train_run(self.settings, run_dir, restart=self.restart, pin_gpu=gpu, progress=progress,
                               view=view, stop=self.stop, stop_timeouts=self.stop_timeouts, base_env=self.base_env,
                               on_message=None if self.quiet else self.console.print)
        except BespokeError as error:
            row = row_from_manifest(run_dir, read_manifest(run_dir))
            row.status, row.reason, row.gpu = "error", str(error), gpu
            return row
        row = row_from_manifest(run_dir, read_manifest(run_dir))
        row.gpu, row.skipped, row.log_tail = gpu, result.skipped, result.log_tail
        if result.skipped:
            row.reason = "already finished (skipped)"
        return row

    def run_sequential(self, run_dirs: list[Path]) -> list[SweepRow]:
        """One run after another; stops early only when the user interrupts."""
        from bespoke.run.progress import ProgressView, RunProgress

        rows = []
        for index, run_dir in enumerate(run_dirs, 1):
            if self.stop.is_set():
                break
            if not self.quiet:
                self.console.print(f"[bold]sweep {index}/{len(run_dirs)}: {Path(run_dir).name}")
            view = ProgressView(self.console, quiet=self.quiet)
            row = self._one(Path(run_dir), None, RunProgress(Path(run_dir).name), view)
            rows.append(row)
            self._announce(row)
            if row.status == "interrupted":
                self.stop.set()
        return rows

    def _announce(self, row: SweepRow) -> None:
        if self.quiet:
            return
        style = {"finished": "green", "failed": "red", "interrupted": "yellow", "error": "red"}.get(row.status, "")
        extra = f" ({row.reason})" if row.reason and row.status != "finished" else ""
        skipped = " (already finished, skipped)" if row.skipped else ""
        self.console.print(f"[{style}]{row.run_id}: {row.status}{skipped}{extra}" if style else
                           f"{row.run_id}: {row.status}{extra}")
        if row.status == "failed" and row.log_tail:
            from bespoke.run.progress import trainer_error

            error = trainer_error(row.log_tail)
            if error:
                self.console.print(f"    {error}", markup=False)
            if row.run_dir is not None:
                self.console.print(f"    full log: {row.run_dir / 'logs' / 'train.log'}", markup=False)

    def run_parallel(self, run_dirs: list[Path], gpus: tuple[str, ...]) -> list[SweepRow]:
        """One worker thread per GPU, each driving one trainer at a time pinned to its GPU; a live table."""
        from bespoke.run.progress import RunProgress

        todo: queue.Queue = queue.Queue()
        for run_dir in run_dirs:
            todo.put(Path(run_dir))
        states = {Path(d).name: RunProgress(Path(d).name, label="queued") for d in run_dirs}
        rows: dict[str, SweepRow] = {}
        lock = threading.Lock()

        def worker(gpu: str):
            while not self.stop.is_set():
                try:
                    run_dir = todo.get_nowait()
                except queue.Empty:
                    return
                state = states[run_dir.name]
                state.label = f"gpu {gpu}"
                row = self._one(run_dir, gpu, state, None)
                state.status = row.status if not row.skipped else "skipped"
                with lock:
                    rows[run_dir.name] = row
                if row.status == "interrupted":
                    self.stop.set()

        threads = [threading.Thread(target=worker, args=(gpu,), daemon=True, name=f"sweep-gpu{gpu}")
                   for gpu in gpus]
        for thread in threads:
            thread.start()
        from bespoke.run.runner import SigtermAsInterrupt

        try:
            with SigtermAsInterrupt():
                self._watch(threads, states, rows)
        except KeyboardInterrupt:
            self.stop.set()
            for thread in threads:
                thread.join()
        return [rows[Path(d).name] for d in run_dirs if Path(d).name in rows]

    def _watch(self, threads, states, rows) -> None:
        import time

        if self.quiet or not self.console.is_terminal:
            announced: set[str] = set()
            while any(t.is_alive() for t in threads):
                time.sleep(0.2)
                for name, row in list(rows.items()):
                    if name not in announced:
                        announced.add(name)
                        self._announce(row)
            for name, row in rows.items():
                if name not in announced:
                    self._announce(row)
            return
        from rich.live import Live

        with Live(progress_table(states), console=self.console, refresh_per_second=4, transient=False) as live:
            while any(t.is_alive() for t in threads):
                time.sleep(0.25)
                live.update(progress_table(states))
            live.update(progress_table(states))
        for row in rows.values():  # the live table shows statuses; say why a run did not finish
            if row.status not in ("finished",):
                self._announce(row)


def progress_table(states: dict):
    """The live table of a parallel sweep: one row per run."""
    from rich.table import Table

    table = Table(title="sweep", expand=False)
    for column in ("run", "where", "status", "epoch", "step", "loss"):
        table.add_column(column)
    for state in states.values():
        snap = state.snapshot()
        table.add_row(snap["run_id"], snap["label"], snap["status"],
                      f"{snap['epoch']}/{snap['total_epochs'] or '?'}",
                      f"{snap['step']}/{snap['total_steps'] or '?'}",
                      f"{snap['loss']:.4f}" if snap["loss"] is not None else "-")
    return table


def comparison_table(rows: list[SweepRow]):
    """The end-of-sweep table: run, status, epochs, time, final loss, best epoch and mean colours."""
    from rich.table import Table

    table = Table(title="sweep results")
    table.add_column("run", no_wrap=True)
    for column, justify in (("status", "left"), ("epochs", "right"), ("time", "right"), ("loss", "right"),
                            ("best", "right"), ("colours", "right")):
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(
            row.run_id, "skipped" if row.skipped else row.status,
            f"{row.epochs_done}/{row.epochs_total or '?'}",
            f"{row.duration:.1f}s" if row.duration is not None else "-",
            f"{row.final_loss:.4f}" if row.final_loss is not None else "-",
            str(row.best_epoch) if row.best_epoch is not None else "-",
            f"{row.mean_colors:.1f}" if row.mean_colors is not None else "-",
        )
    return table


def rows_to_json(rows: list[SweepRow]) -> list[dict]:
    """Rows as plain JSON data (for --json)."""
    return [{"run": r.run_id, "path": str(r.run_dir) if r.run_dir else None, "status": r.status,
             "skipped": r.skipped, "resolution": r.resolution, "preset": r.preset, "epochs_done": r.epochs_done,
             "epochs_total": r.epochs_total, "duration_s": r.duration, "final_loss": r.final_loss,
             "best_epoch": r.best_epoch, "mean_colors": r.mean_colors, "reason": r.reason, "gpu": r.gpu}
            for r in rows]


@dataclass
class SweepOutcome:
    """Rows of the runs this machine handled, and whether the user interrupted the sweep."""

    rows: list[SweepRow]
    interrupted: bool


def run_sweep(settings, console, *, resolutions: str | None = None, preset: str | None = None,
              sweep_file: Path | None = None, dataset: Path, overrides: tuple[str, ...] = (),
              gpus: str | None = None, shard: str | None = None, restart: bool = False, quiet: bool = False,
              base_env: dict | None = None, stop_timeouts: tuple[float, float] = (10.0, 5.0),
              process: bool = False) -> SweepOutcome:
    """`bespoke sweep`: plan every entry, keep this machine's shard, run them (one per GPU with `gpus`).

    With `process`, each finished run's samples are processed (when its report is missing or stale) so the
    comparison table carries the best epoch and its mean colours.
    """
    gpu_ids = parse_gpus(gpus)
    shard_spec = parse_shard(shard)
    entries = sweep_entries(parse_resolutions(resolutions) if resolutions else None, preset, overrides, sweep_file)
    settings.sd_script("train_network.py")  # once, before any run: not the same error for every run
    # with a shard, run ids are computed first without writing, so no machine creates another's run folders
    plans = plan_entries(settings, entries, dataset, create=shard_spec is None)
    unique = {plan.run_id: (plan, entry) for plan, entry in zip(plans, entries, strict=True)}
    share = set(shard_items(list(unique), shard_spec))
    chosen = [run_id for run_id in unique if run_id in share]  # the sweep's own order, this machine's share
    if shard_spec is not None:
        mine = plan_entries(settings, [unique[run_id][1] for run_id in chosen], dataset)
        unique.update({plan.run_id: (plan, None) for plan in mine})
    if not quiet:
        share = f" (shard {shard_spec[0]}/{shard_spec[1]}: {len(chosen)} of {len(unique)})" if shard_spec else ""
        console.print(f"sweep: {len(chosen)} run(s){share}: {', '.join(chosen) or '-'}")
    runner = SweepRunner(settings, console, quiet=quiet, restart=restart, stop_timeouts=stop_timeouts,
                         base_env=base_env)
    run_dirs = [unique[run_id][0].paths.root for run_id in chosen]
    try:
        rows = runner.run_parallel(run_dirs, gpu_ids) if gpu_ids else runner.run_sequential(run_dirs)
    except KeyboardInterrupt:
        runner.stop.set()
        rows = []
    interrupted = runner.stop.is_set()
    if interrupted:
        # rows for runs never started, so the table says what is left
        from bespoke.run.paths import read_manifest

        done = {r.run_id for r in rows}
        rows += [row_from_manifest(d, read_manifest(d)) for d in run_dirs if d.name not in done]
    elif process:
        process_finished(rows, console, quiet)
    return SweepOutcome(rows, interrupted)


def process_finished(rows: list[SweepRow], console, quiet: bool) -> None:
    """Run `process` on finished runs whose report is missing or older than their samples; fill the rows."""
    from bespoke.errors import BespokeError
    from bespoke.review.process import default_palette, process_path
    from bespoke.review.build import needs_processing

    for row in rows:
        if row.run_dir is None or row.status not in ("finished", "skipped") or not any(
                (Path(row.run_dir) / "model" / "sample").glob("*.png")):
            continue
        try:
            if needs_processing(row.run_dir):
                process_path(row.run_dir, palette=default_palette(row.run_dir), progress=not quiet)
        except BespokeError as error:  # the table still shows the run; the reason says why metrics are missing
            row.reason = f"process: {error}"
            continue
        row.best_epoch, row.mean_colors = report_summary(row.run_dir)


def runs_overview(outputs_dir: Path) -> list[dict]:
    """`bespoke runs`: one dict per run folder (id, status, resolution, preset, epochs, best epoch, path)."""
    from bespoke.run.paths import list_run_dirs, read_manifest

    out = []
    for run_dir in list_run_dirs(outputs_dir):
        try:
            manifest = read_manifest(run_dir)
        except Exception as error:  # noqa: BLE001 - one broken run.json must not hide the others
            out.append({"id": run_dir.name, "status": "unreadable", "resolution": None, "preset": None,
                        "epochs_done": 0, "epochs_total": None, "best_epoch": None, "simulated": False,
                        "path": str(run_dir), "error": str(error)})
            continue
        best, _colors = report_summary(run_dir)
        out.append({
            "id": manifest.get("id", run_dir.name), "status": manifest.get("status"),
            "resolution": manifest.get("resolution"), "preset": manifest.get("preset"),
            "epochs_done": manifest.get("epochs_done") or 0,
            "epochs_total": manifest.get("epochs_total") or manifest.get("num_epochs"),
            "best_epoch": best, "simulated": bool(manifest.get("simulated")), "path": str(run_dir),
        })
    return out
