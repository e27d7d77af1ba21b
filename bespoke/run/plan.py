"""Plan a run: resolve the preset, prepare the dataset, render + validate the configs, create the run folder.

The run id is `<resolution>-<preset>-<hash8>`, hash8 over everything that decides what trains (config
values, dataset content hash, prompts, base model) and nothing that depends on where the folder is. The
same config finds the same folder and leaves it untouched; a changed config gets a new folder. A new
folder is assembled under a temporary name and renamed into place, so a failure leaves nothing behind.

The trainer runs with the run folder as its working directory and every run-local path in the configs is
relative to it (`output_dir = "model"`), so a run folder moved or copied elsewhere still trains and resumes.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import toml

from bespoke import __version__
from bespoke.clock import now_iso
from bespoke.dataset.layout import LAYOUTS
from bespoke.dataset.prepare import PreparedDataset, prepare_dataset
from bespoke.errors import ConfigError, RunError
from bespoke.fsutil import atomic_write_text, make_temp_dir, sha256_bytes, sha256_file
from bespoke.kohya.config import RUN_LOCAL_KEYS, build_dataset_config, build_training_config, flatten_training
from bespoke.kohya.launch import NEUTRAL_ACCELERATE_CONFIG, LaunchSpec, build_launch, train_script_args
from bespoke.kohya.options import options_source
from bespoke.kohya.presets import ResolvedPreset, resolve_preset
from bespoke.kohya.prompts import SamplePrompt, for_size, parse_prompt_file, render_prompts
from bespoke.kohya.rules import check_image_dirs, check_network_weights
from bespoke.kohya.tomlwriter import render_dataset_toml, render_training_toml
from bespoke.kohya.validate import (
    check_consistency,
    validate_dataset,
    validate_preset_values,
    validate_training,
)
from bespoke.run.facts import sd_scripts_commit
from bespoke.run.holdout import Holdout, hold_out
from bespoke.run.manifest import RunManifest, load_manifest, save_manifest
from bespoke.run.paths import RunPaths, is_run_dir
from bespoke.run.stop_rules import parse_stop_rule
from bespoke.settings import Settings

CONFIG_FILES = ("training.toml", "dataset.toml", "prompts.txt")


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
    name: str | None = None  # the user's label for the run (not part of the run id)


@dataclass(frozen=True)
class RunPlan:
    """A planned run folder and exactly what the trainer will be given."""

    run_id: str
    paths: RunPaths
    training: dict
    dataset_config: dict
    prompts: list[SamplePrompt]
    argv: list[str]
    env_overrides: dict
    created: bool
    manifest: RunManifest
    renamed_from: str | None = None  # an existing run this plan relabelled: its name before ("" for none)


@dataclass(frozen=True)
class _Rendered:
    """The three config texts of a run and the values they hold."""

    training: dict
    dataset_config: dict
    training_text: str
    dataset_text: str
    prompts: list[SamplePrompt]
    prompts_text: str
    run_id: str
    holdout: Holdout | None = None


def run_local_paths(paths: RunPaths) -> dict[str, str]:
    """The training keys that point inside the run folder, relative to it (the trainer's working directory)."""
    return {"output_dir": paths.relative(paths.model_dir), "logging_dir": paths.relative(paths.tensorboard_dir),
            "sample_prompts": paths.relative(paths.prompts_txt)}


def launch_spec_for(settings: Settings, paths: RunPaths, training: dict, gpu_ids: tuple[str, ...] = ()) -> LaunchSpec:
    """The accelerate launch of train_network.py for a run folder, started in that folder."""
    accelerate = settings.accelerate
    return LaunchSpec(
        python=settings.trainer_python,
        script=(settings.sd_scripts or Path("sd-scripts")) / "train_network.py",
        script_args=train_script_args(paths.relative(paths.training_toml), paths.relative(paths.dataset_toml)),
        num_processes=accelerate.num_processes,
        num_machines=accelerate.num_machines,
        mixed_precision=training.get("mixed_precision", "no"),
        dynamo_backend=accelerate.dynamo_backend,
        num_cpu_threads_per_process=accelerate.num_cpu_threads_per_process,
        gpu_ids=tuple(gpu_ids),
        extra_accelerate_args=tuple(accelerate.extra_args),
        cwd=paths.root,
        # a neutral accelerate config of the run's own: explicit flags alone do not stop a personal
        # default_config.yaml (distributed_type, debug, ...) from leaking in
        accelerate_config=Path(paths.relative(paths.accelerate_yaml)),
    )


def base_model_argument(base_model: str) -> str:
    """A base model that names an existing local file or folder, made absolute (the trainer runs in the run
    folder, not where the user typed the path); a hub id as it is."""
    path = Path(base_model).expanduser()
    return str(path.resolve()) if path.exists() else base_model


def _prompts_for(preset: ResolvedPreset, request: PlanRequest) -> tuple[list[SamplePrompt], str]:
    if request.prompts:
        prompts = for_size(parse_prompt_file(request.prompts), preset.sample_size, force=False)
        origin = Path(request.prompts).name
    else:
        # A preset's prompt set is drawn at the preset's sample size (the training size unless it says).
        prompts = for_size(parse_prompt_file(preset.prompts_file), preset.sample_size, force=True)
        origin = preset.prompts_file.name
    header = f"Sample prompts ({origin}), {preset.sample_size} px, sd-scripts line syntax."
    return prompts, render_prompts(prompts, header=header)


def _run_hash(training: dict, dataset_config: dict, dataset_sha: str, prompts_text: str, layout: str,
              holdout: Holdout | None = None) -> str:
    dataset_values = json.loads(json.dumps(dataset_config))
    for dataset in dataset_values["datasets"]:
        for subset in dataset["subsets"]:
            subset.pop("image_dir", None)
    payload = {  # where the run folder is never decides its id
        "training": {k: v for k, v in training.items() if k not in RUN_LOCAL_KEYS},
        "dataset": dataset_values,
        "dataset_sha256": dataset_sha,
        "prompts": prompts_text,
        "layout": layout,
    }
    if holdout is not None:  # which pictures train (the folders' paths are not part of the id)
        payload["validation"] = holdout.names
    return sha256_bytes(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8"))[:8]


def _header(kind: str, run_id: str, preset: ResolvedPreset) -> str:
    layers = " <- ".join(p.stem for p in preset.sources)
    if preset.overrides:
        layers += " <- --set " + " --set ".join(preset.overrides)
    return (f"{kind} for bespoke run {run_id}, written by `bespoke plan`.\n"
            f"Preset layers: {layers}. Validated against sd-scripts' option tables.\n"
            f"Paths are relative to the run folder, where the trainer runs.\n"
            f"This is exactly what the trainer reads; edit a preset instead (a changed config gets a new run).")


def _versions() -> dict:
    return {"bespoke": __version__, "python": platform.python_version(),
            "option_table_sd_scripts_commit": options_source()["source_commit"]}


def _dataset_count(prepared: PreparedDataset) -> int:
    summary = prepared.report.get("summary") if isinstance(prepared.report, dict) else None
    if isinstance(summary, dict) and isinstance(summary.get("images"), int):
        return summary["images"]
    return sum(1 for _ in Path(prepared.dir).glob("*.png"))


def _render(preset: ResolvedPreset, base_model: str, prepared: PreparedDataset, paths: RunPaths, run_id: str,
            prompts: tuple[list[SamplePrompt], str], holdout: Holdout | None = None) -> _Rendered:
    """Render the configs and validate what sd-scripts will parse: the text read back with toml, as it does."""
    training = build_training_config(preset, base_model=base_model, run_local=run_local_paths(paths))
    if holdout is None:
        dataset_config = build_dataset_config(preset, prepared.dir)
    else:
        dataset_config = build_dataset_config(preset, holdout.train_dir, holdout.validation_dir, holdout.seed)
    training_text = render_training_toml(training, _header("Training config (--config_file)", run_id, preset))
    dataset_text = render_dataset_toml(dataset_config, _header("Dataset config (--dataset_config)", run_id, preset))
    validate_training(flatten_training(toml.loads(training_text)), str(paths.training_toml))
    validate_dataset(toml.loads(dataset_text), str(paths.dataset_toml), training)
    check_consistency(training, dataset_config, str(paths.dataset_toml))
    return _Rendered(training, dataset_config, training_text, dataset_text, *prompts, run_id, holdout)


def _manifest_for(settings: Settings, request: PlanRequest, preset: ResolvedPreset, prepared: PreparedDataset,
                  rendered: _Rendered, argv: list[str], env_overrides: dict) -> RunManifest:
    texts = dict(zip(CONFIG_FILES, (rendered.training_text, rendered.dataset_text, rendered.prompts_text),
                     strict=True))
    return RunManifest(
        id=rendered.run_id, status="planned", created_at=now_iso(), resolution=request.resolution,
        preset=preset.name, preset_layers=[p.name for p in preset.sources], overrides=list(preset.overrides),
        layout=prepared.layout.name,
        dataset={
            "source": str(Path(prepared.source)), "prepared_dir": str(prepared.dir), "sha256": prepared.sha256,
            "images": _dataset_count(prepared), "layout": prepared.layout.to_json(),
            "palette_size": len(prepared.palette), "background": request.background, "trigger": request.trigger,
            "validation": rendered.holdout.to_json() if rendered.holdout is not None else None,
        },
        config_sha256={name: sha256_bytes(text.encode("utf-8")) for name, text in texts.items()},
        output_name=rendered.training["output_name"], num_epochs=rendered.training.get("max_train_epochs"),
        sample_size=preset.sample_size, prompts=[p.to_json() for p in rendered.prompts],
        argv=argv, env_overrides=env_overrides, sd_scripts=str(settings.sd_scripts) if settings.sd_scripts else None,
        sd_scripts_commit=sd_scripts_commit(settings.sd_scripts), base_model=settings.base_model,
        versions=_versions(), stop_when=preset.bespoke.get("stop_when"),
    )


def plan_run(settings: Settings, request: PlanRequest, *, demo: bool = False, create: bool = True) -> RunPlan:
    """Create (or find) the run folder for `request`: configs written, validated, launch argv recorded.

    `create=False` resolves and validates everything (the run id included) but writes no run folder: the
    returned plan has `created=False` and the manifest that would have been written. `demo` marks a run
    planned by `bespoke demo` (its samples come from the simulator).
    """
    name = check_name(request.name)
    preset = resolve_preset(request.resolution, request.preset, request.overrides, user_dir=settings.presets_dir)
    validate_preset_values(preset)
    layout = request.layout or preset.layout
    if layout not in LAYOUTS:
        raise ConfigError(f"layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    prompts = _prompts_for(preset, request)
    prepared = prepare_dataset(Path(request.dataset).expanduser(), request.resolution, cache_dir=settings.cache_dir,
                               layout=layout, background=request.background, trigger=request.trigger)
    base_model = base_model_argument(settings.base_model)
    parse_stop_rule(preset.bespoke.get("stop_when"), f"preset {preset.name or 'base'}: [bespoke] stop_when")
    holdout = hold_out(prepared, preset.validation_share, preset.validation_seed)
    probe = _render(preset, base_model, prepared, RunPaths(Path("/run")), "-", prompts, holdout)
    run_id = f"{request.resolution}-{preset.name or 'default'}-" + _run_hash(
        probe.training, probe.dataset_config, prepared.sha256, probe.prompts_text, layout, holdout)
    paths = RunPaths(Path(settings.outputs_dir) / run_id)
    rendered = _render(preset, base_model, prepared, paths, run_id, prompts, holdout)
    # the files the trainer opens, from its working directory (the run folder)
    check_image_dirs(rendered.dataset_config, rendered.training, str(paths.dataset_toml), paths.root)
    check_network_weights(rendered.training, str(paths.training_toml), paths.root)
    argv, _env, env_overrides, _removed = build_launch(launch_spec_for(settings, paths, rendered.training), dict(os.environ))
    if paths.root.exists():
        return _existing(paths, rendered, argv, env_overrides, name if create else None)
    manifest = _manifest_for(settings, request, preset, prepared, rendered, argv, env_overrides)
    manifest.demo, manifest.name = demo, name
    if not create:
        return _plan(run_id, paths, rendered, argv, env_overrides, False, manifest)
    if not _create_run_folder(paths, rendered, manifest):  # another process created the same run meanwhile
        return _existing(paths, rendered, argv, env_overrides, name)
    return _plan(run_id, paths, rendered, argv, env_overrides, True, manifest)


def _plan(run_id: str, paths: RunPaths, rendered: _Rendered, argv: list[str], env_overrides: dict, created: bool,
          manifest: RunManifest) -> RunPlan:
    return RunPlan(run_id=run_id, paths=paths, training=rendered.training, dataset_config=rendered.dataset_config,
                   prompts=rendered.prompts, argv=argv, env_overrides=env_overrides,
                   created=created, manifest=manifest)


def check_name(name: str | None) -> str | None:
    """A run name: one printable line of at most 80 characters (None or "" means no name)."""
    if not name:
        return None
    if len(name) > 80 or not name.isprintable() or name != name.strip():
        raise ConfigError(f"run name {name!r}: use one printable line of at most 80 characters, "
                          "without leading or trailing spaces")
    return name


def _existing(paths: RunPaths, rendered: _Rendered, argv: list[str], env_overrides: dict,
              name: str | None = None) -> RunPlan:
    if not is_run_dir(paths.root):
        raise RunError(f"{paths.root} exists but has no run.json; move it away (bespoke never overwrites it)")
    manifest = load_manifest(paths.root)
    renamed_from = None
    if name is not None and name != manifest.name and manifest.status != "running":
        # a name is a label, not part of what trains: the same config under a new name renames the run
        renamed_from, manifest.name = manifest.name or "", name
        save_manifest(paths.root, manifest)
    plan = _plan(paths.root.name, paths, rendered, list(manifest.argv or argv),
                 dict(manifest.env_overrides or env_overrides), False, manifest)
    return replace(plan, renamed_from=renamed_from)


def _create_run_folder(paths: RunPaths, rendered: _Rendered, manifest: RunManifest) -> bool:
    """Assemble the folder under a temporary name, then rename it into place; False if it appeared meanwhile."""
    parent = paths.root.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(parent, prefix=f".{paths.root.name}.", suffix=".planning")
    try:
        staged = RunPaths(tmp)
        atomic_write_text(staged.training_toml, rendered.training_text)
        atomic_write_text(staged.dataset_toml, rendered.dataset_text)
        atomic_write_text(staged.prompts_txt, rendered.prompts_text)
        atomic_write_text(staged.accelerate_yaml, NEUTRAL_ACCELERATE_CONFIG)
        staged.logs_dir.mkdir()
        save_manifest(tmp, manifest)
        try:
            os.rename(tmp, paths.root)
        except OSError:
            if paths.root.exists():
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
        return True
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def modified_configs(paths: RunPaths, manifest: RunManifest) -> list[str]:
    """Config files of a run folder whose content no longer matches run.json's config_sha256 (edited by hand)."""
    changed = []
    for name in CONFIG_FILES:
        path = paths.config_dir / name
        recorded = manifest.config_sha256.get(name)
        if recorded and (not path.is_file() or sha256_file(path) != recorded):
            changed.append(name)
    return changed

