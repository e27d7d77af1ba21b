"""Plan a run: resolve the preset, prepare the dataset, render + validate the configs, create the run folder.

The run id is `<resolution>-<preset>-<hash8>`, hash8 over everything that decides what trains (config
values, dataset content hash, prompts, base model) and nothing that depends on where the folder is. The
same config finds the same folder and leaves it untouched; a changed config gets a new folder. A new
folder is assembled under a temporary name and renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import toml

from bespoke.errors import ConfigError, RunError
from bespoke.kohya.config import (
    build_dataset_config,
    build_training_config,
    check_consistency,
    flatten_training,
    render_dataset_toml,
    render_training_toml,
    validate_dataset,
    validate_preset_values,
    validate_training,
)
from bespoke.kohya.launch import NEUTRAL_ACCELERATE_CONFIG, LaunchSpec, build_launch, train_script_args
from bespoke.kohya.presets import ResolvedPreset, resolve_preset
from bespoke.kohya.prompts import SamplePrompt, for_size, parse_prompt_file, render_prompts
from bespoke.run.paths import RunPaths, is_run_dir, now_iso, read_manifest, write_manifest

__all__ = ["PlanRequest", "RunPlan", "resolve_preset", "plan_run", "launch_spec_for", "ResolvedPreset"]

# Keys whose values name the run folder: left out of the run id hash.
_PATH_KEYS = ("output_dir", "logging_dir", "sample_prompts")


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked `plan` for."""

    resolution: int
    dataset: Path
    preset: str | None = None  # named preset file stem in kohya_configs, e.g. "baseline-512"
    overrides: tuple[str, ...] = ()  # "key=value" (TOML value syntax)
    prompts: Path | None = None  # user's prompt file, replaces the preset's prompt set
    layout: str | None = None  # None -> preset's or "stretch"
    background: str | None = None  # alpha background, passed to prepare
    trigger: str | None = None  # caption trigger phrase, passed to prepare


@dataclass(frozen=True)
class RunPlan:
    """A planned run folder and exactly what the trainer will be given."""

    run_id: str
    paths: RunPaths
    training: dict
    dataset_config: dict
    prompts: list
    argv: list[str]
    env_overrides: dict
    created: bool
    manifest: dict = field(default_factory=dict)


def launch_spec_for(settings, plan_or_paths, training: dict, gpu_ids: tuple[str, ...] = ()) -> LaunchSpec:
    """The accelerate launch of train_network.py for a run folder (a RunPlan, RunPaths or run folder Path)."""
    if isinstance(plan_or_paths, RunPlan):
        paths = plan_or_paths.paths
    elif isinstance(plan_or_paths, RunPaths):
        paths = plan_or_paths
    else:
        paths = RunPaths(Path(plan_or_paths))
    accelerate = settings.accelerate
    return LaunchSpec(
        python=settings.trainer_python,
        script=(settings.sd_scripts or Path("sd-scripts")) / "train_network.py",
        script_args=train_script_args(paths.training_toml, paths.dataset_toml),
        num_processes=accelerate.num_processes,
        num_machines=accelerate.num_machines,
        mixed_precision=training.get("mixed_precision", "no"),
        dynamo_backend=accelerate.dynamo_backend,
        num_cpu_threads_per_process=accelerate.num_cpu_threads_per_process,
        gpu_ids=tuple(gpu_ids),
        extra_accelerate_args=tuple(accelerate.extra_args),
        cwd=settings.sd_scripts,
        # a neutral accelerate config of the run's own: explicit flags alone do not stop a personal
        # default_config.yaml (distributed_type, debug, ...) from leaking in
        accelerate_config=paths.config_dir / "accelerate.yaml",
    )


def sd_scripts_commit(checkout: Path | None) -> str | None:
    """The git commit of an sd-scripts checkout, read from .git without running git (None if unknown)."""
    if not checkout:
        return None
    git = Path(checkout) / ".git"
    try:
        if git.is_file():  # worktree / submodule: "gitdir: <path>"
            target = git.read_text(encoding="utf-8").strip().removeprefix("gitdir:").strip()
            git = (Path(checkout) / target).resolve()
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head
        ref = head[4:].strip()
        ref_file = git / ref
        if ref_file.is_file():
            return ref_file.read_text(encoding="utf-8").strip()
        packed = git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    except OSError:
        return None
    return None


def _prompts_for(preset: ResolvedPreset, request: PlanRequest) -> tuple[list[SamplePrompt], str]:
    if request.prompts:
        prompts = for_size(parse_prompt_file(request.prompts), preset.sample_size, force=False)
        origin = Path(request.prompts).name
    else:
        # A preset's prompt set is drawn at the preset's sample size (the training size unless it says).
        prompts = for_size(parse_prompt_file(preset.prompts_file), preset.sample_size, force=True)
        origin = preset.prompts_file.name
    return prompts, origin


def _run_hash(training: dict, dataset_config: dict, dataset_sha: str, prompts_text: str, layout: str) -> str:
    dataset_values = json.loads(json.dumps(dataset_config))
    for dataset in dataset_values["datasets"]:
        for subset in dataset["subsets"]:
            subset.pop("image_dir", None)
    payload = {
        "training": {k: v for k, v in training.items() if k not in _PATH_KEYS},
        "dataset": dataset_values,
        "dataset_sha256": dataset_sha,
        "prompts": prompts_text,
        "layout": layout,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:8]


def _header(kind: str, run_id: str, preset: ResolvedPreset) -> str:
    layers = " <- ".join(p.stem for p in preset.sources)
    if preset.overrides:
        layers += " <- --set " + " --set ".join(preset.overrides)
    return (f"{kind} for bespoke run {run_id}, written by `bespoke plan`.\n"
            f"Preset layers: {layers}. Validated against sd-scripts' option tables.\n"
            f"This is exactly what the trainer reads; edit a preset instead (a changed config gets a new run).")


def _versions() -> dict:
    import platform

    from bespoke import __version__
    from bespoke.kohya.options import options_source

    return {"bespoke": __version__, "python": platform.python_version(),
            "option_table_sd_scripts_commit": options_source()["source_commit"]}


def _dataset_count(prepared) -> int:
    report = prepared.report if isinstance(prepared.report, dict) else {}
    summary = report.get("summary")
    if isinstance(summary, dict) and isinstance(summary.get("images"), int):
        return summary["images"]
    images = report.get("images")
    if isinstance(images, list):
        return len(images)
    if isinstance(images, int):
        return images
    return sum(1 for _ in Path(prepared.dir).glob("*.png"))


def plan_run(settings, request: PlanRequest, *, extra_manifest: dict | None = None,
             progress: bool = True, create: bool = True) -> RunPlan:
    """Create (or find) the run folder for `request`: configs written, validated, launch argv recorded.

    `progress=False` silences the dataset preparation's progress bar (for callers with their own output).
    `create=False` resolves and validates everything (the run id included) but writes no run folder: the
    returned plan has `created=False` and the manifest that would have been written.
    """
    from bespoke.dataset.prepare import prepare_dataset
    from bespoke.dataset.layout import LAYOUTS

    preset = resolve_preset(request.resolution, request.preset, request.overrides)
    validate_preset_values(preset)
    layout = request.layout or preset.layout
    if layout not in LAYOUTS:
        raise ConfigError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    prompts, prompts_origin = _prompts_for(preset, request)
    prompts_text = render_prompts(prompts, header=f"Sample prompts ({prompts_origin}), "
                                                  f"{preset.sample_size} px, sd-scripts line syntax.")

    dataset_path = Path(request.dataset).expanduser()
    prepared = prepare_dataset(dataset_path, request.resolution, cache_dir=settings.cache_dir, layout=layout,
                               background=request.background, trigger=request.trigger, progress=progress)

    # Path-free values first: they decide the run id.
    probe = build_training_config(preset, base_model=settings.base_model, paths=RunPaths(Path("/run")))
    probe_dataset = build_dataset_config(preset, prepared.dir)
    run_id = f"{request.resolution}-{preset.name or 'default'}-" + _run_hash(
        probe, probe_dataset, prepared.sha256, prompts_text, layout)
    paths = RunPaths(Path(settings.outputs_dir) / run_id)

    training = build_training_config(preset, base_model=settings.base_model, paths=paths)
    dataset_config = build_dataset_config(preset, prepared.dir)
    training_text = render_training_toml(training, _header("Training config (--config_file)", run_id, preset))
    dataset_text = render_dataset_toml(dataset_config, _header("Dataset config (--dataset_config)", run_id, preset))
    # Validate what sd-scripts will parse: the rendered text read back with toml, as sd-scripts does.
    validate_training(flatten_training(toml.loads(training_text)), str(paths.training_toml))
    validate_dataset(toml.loads(dataset_text), str(paths.dataset_toml))
    check_consistency(training, dataset_config, str(paths.dataset_toml))

    spec = launch_spec_for(settings, paths, training)
    argv, _env, env_overrides = build_launch(spec, dict(os.environ))

    if paths.root.exists():
        return _existing(paths, training, dataset_config, prompts, argv, env_overrides)

    manifest = {
        "id": run_id,
        "status": "planned",
        "created_at": now_iso(),
        "resolution": request.resolution,
        "preset": preset.name,
        "preset_layers": [p.name for p in preset.sources],
        "overrides": list(preset.overrides),
        "layout": layout,
        "simulated": False,
        "dataset": {
            "source": str(Path(prepared.source)),
            "prepared_dir": str(prepared.dir),
            "sha256": prepared.sha256,
            "images": _dataset_count(prepared),
            "layout": prepared.layout.to_json(),
            "palette_size": len(prepared.palette),
            "background": request.background,
            "trigger": request.trigger,
        },
        "config_sha256": {
            "training.toml": hashlib.sha256(training_text.encode("utf-8")).hexdigest(),
            "dataset.toml": hashlib.sha256(dataset_text.encode("utf-8")).hexdigest(),
            "prompts.txt": hashlib.sha256(prompts_text.encode("utf-8")).hexdigest(),
        },
        "output_name": training["output_name"],
        "num_epochs": training.get("max_train_epochs"),
        "sample_size": preset.sample_size,
        "prompts": [p.to_json() for p in prompts],
        "argv": argv,
        "env_overrides": env_overrides,
        "sd_scripts": str(settings.sd_scripts) if settings.sd_scripts else None,
        "sd_scripts_commit": sd_scripts_commit(settings.sd_scripts),
        "base_model": settings.base_model,
        "versions": _versions(),
        **(extra_manifest or {}),
    }
    if not create:
        return RunPlan(run_id=run_id, paths=paths, training=training, dataset_config=dataset_config,
                       prompts=prompts, argv=argv, env_overrides=env_overrides, created=False, manifest=manifest)
    written = _create_run_folder(paths, training_text, dataset_text, prompts_text, manifest)
    if written is None:  # another process created the same run meanwhile
        return _existing(paths, training, dataset_config, prompts, argv, env_overrides)
    return RunPlan(run_id=run_id, paths=paths, training=training, dataset_config=dataset_config,
                   prompts=prompts, argv=argv, env_overrides=env_overrides, created=True, manifest=written)


def _existing(paths: RunPaths, training, dataset_config, prompts, argv, env_overrides) -> RunPlan:
    if not is_run_dir(paths.root):
        raise RunError(f"{paths.root} exists but has no run.json; move it away (bespoke never overwrites it)")
    manifest = read_manifest(paths.root)
    return RunPlan(run_id=paths.root.name, paths=paths, training=training, dataset_config=dataset_config,
                   prompts=prompts, argv=list(manifest.get("argv") or argv),
                   env_overrides=dict(manifest.get("env_overrides") or env_overrides), created=False,
                   manifest=manifest)


def _create_run_folder(paths: RunPaths, training_text: str, dataset_text: str, prompts_text: str,
                       manifest: dict) -> dict | None:
    """Assemble the folder under a temporary name, then rename it into place; None if it appeared meanwhile."""
    from bespoke.fsutil import atomic_write_text

    parent = paths.root.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{paths.root.name}.", suffix=".planning", dir=parent))
    try:
        staged = RunPaths(tmp)
        atomic_write_text(staged.training_toml, training_text)
        atomic_write_text(staged.dataset_toml, dataset_text)
        atomic_write_text(staged.prompts_txt, prompts_text)
        atomic_write_text(staged.config_dir / "accelerate.yaml", NEUTRAL_ACCELERATE_CONFIG)
        staged.logs_dir.mkdir()
        written = write_manifest(tmp, manifest)
        try:
            os.rename(tmp, paths.root)
        except OSError:
            if paths.root.exists():
                shutil.rmtree(tmp, ignore_errors=True)
                return None
            raise
        return written
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def modified_configs(plan: RunPlan) -> list[str]:
    """Config files of a run folder whose content no longer matches run.json's config_sha256 (edited by hand)."""
    from bespoke.fsutil import sha256_file

    recorded = plan.manifest.get("config_sha256") or {}
    changed = []
    for name, path in (("training.toml", plan.paths.training_toml), ("dataset.toml", plan.paths.dataset_toml),
                       ("prompts.txt", plan.paths.prompts_txt)):
        if name in recorded and (not path.is_file() or sha256_file(path) != recorded[name]):
            changed.append(name)
    return changed
