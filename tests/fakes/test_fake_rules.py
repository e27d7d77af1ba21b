"""The fake trainer refuses what the real one refuses, with the real messages and exit codes, when bespoke's
validation is bypassed (the TOMLs edited by hand after `plan`). The table is tests/fakes/bad_configs.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import toml
from fakes.bad_configs import BAD_CONFIGS, BadConfig, apply_bad_config, plan_small_run
from locations import FAKE_DIR

from bespoke.settings import load_settings

sys.path.insert(0, str(FAKE_DIR))
import fake_rules  # noqa: E402  (the fake's own module, next to its train_network.py)

FAKE = FAKE_DIR / "train_network.py"


def planned_run(project: Path) -> Path:
    """A 64 px run planned (and validated) by bespoke on 4 tiny punks, with the fake as the trainer."""
    return plan_small_run(project, load_settings(project).with_overrides(sd_scripts=FAKE_DIR, sd_python=sys.executable))


def run_fake(run_dir: Path) -> subprocess.CompletedProcess:
    """The fake as bespoke launches it (config paths relative to the run folder), without accelerate."""
    return subprocess.run([sys.executable, str(FAKE), "--config_file", "config/training.toml",
                           "--dataset_config", "config/dataset.toml"], cwd=run_dir, capture_output=True, text=True,
                          env={"FAKE_TRAINER_STEP_SECONDS": "0", "PATH": "/usr/bin:/bin"}, timeout=120)


def test_the_planned_run_trains(isolated_project):
    run_dir = planned_run(isolated_project)
    done = run_fake(run_dir)
    assert done.returncode == 0, done.stderr
    assert (run_dir / "model" / "bespoke_64px.safetensors").is_file()
    assert "No caption file found" not in done.stderr


@pytest.mark.parametrize("bad", BAD_CONFIGS, ids=lambda bad: bad.name)
def test_the_fake_refuses_each_bad_config(isolated_project, bad: BadConfig):
    run_dir = planned_run(isolated_project)
    apply_bad_config(run_dir, bad)
    done = run_fake(run_dir)
    assert done.returncode == (0 if bad.trainer_exit_zero else 1), done.stderr[-2000:]
    assert bad.trainer_message in done.stdout + done.stderr
    if bad.trains_nothing:
        assert not (run_dir / "model").exists() or not any((run_dir / "model").iterdir())


def test_without_caption_extension_the_fake_looks_for_dot_caption(isolated_project):
    run_dir = planned_run(isolated_project)
    apply_bad_config(run_dir, BadConfig("no_caption_extension", training={"caption_extension": None},
                                        subset={"caption_extension": None}))
    done = run_fake(run_dir)
    assert done.returncode == 0  # the real trainer only warns and trains without captions
    assert "No caption file found for 4 images" in done.stderr


def test_bucket_steps_are_free_when_bucketing_is_off(isolated_project):
    # train_util.DreamBoothDataset: bucket_reso_steps = None without buckets; the SD 1.x assert passes
    # (seen on the real trainer: enable_bucket = false, bucket_reso_steps = 16 reaches the model load)
    run_dir = planned_run(isolated_project)
    apply_bad_config(run_dir, BadConfig("no_buckets", dataset={"enable_bucket": False, "bucket_reso_steps": 16,
                                                               "min_bucket_reso": 256}))
    assert run_fake(run_dir).returncode == 0


def test_a_missing_dataset_config_is_a_value_error(isolated_project):
    run_dir = planned_run(isolated_project)
    (run_dir / "config" / "dataset.toml").unlink()
    done = run_fake(run_dir)
    assert done.returncode == 1 and "ValueError: file not found" in done.stderr


SUB = {"image_dir": "x"}


@pytest.mark.parametrize("config, message", [
    # voluptuous: a bool is an int, an int is not a float, Any(float, int) names float
    ({"datasets": [{"subsets": [{**SUB, "num_repeats": True}]}]}, None),
    ({"datasets": [{"resolution": [64, 64.0], "subsets": [SUB]}]},
     "expected int for dictionary value @ data['datasets'][0]['resolution']"),
    ({"datasets": [{"subsets": [{**SUB, "caption_dropout_rate": "a"}]}]},
     "expected float for dictionary value @ data['datasets'][0]['subsets'][0]['caption_dropout_rate']"),
    ({"datasets": [{"subsets": [{**SUB, "face_crop_aug_range": [1.0]}]}]},
     "None for dictionary value @ data['datasets'][0]['subsets'][0]['face_crop_aug_range']"),
    ({"general": {"image_dir": "x"}, "datasets": [{"subsets": [SUB]}]},
     "extra keys not allowed @ data['general']['image_dir']"),
    ({"dataset": [{"subsets": [SUB]}]}, "extra keys not allowed @ data['dataset']"),
    ({"datasets": {"subsets": [SUB]}}, "expected a list for dictionary value @ data['datasets']"),
    ({"datasets": [{"subsets": [{**SUB, "metadata_file": "m"}, SUB]}]},
     "DreamBooth subset and fine tuning subset cannot be mixed in the same dataset."),
    ({"datasets": [{"network_multiplier": 1, "subsets": [SUB]}]},
     "expected float for dictionary value @ data['datasets'][0]['network_multiplier']"),
])
def test_schema_messages_are_voluptuous_ones(config, message):
    # each message seen from sd-scripts' own ConfigSanitizer (harness venv, 2026-12-01)
    errors = fake_rules.schema_errors(config)
    if message is None:
        assert errors == []
    else:
        assert errors and errors[0].startswith(message)


def test_training_types_are_checked_like_the_argparse_sanitizer():
    config = {"datasets": [{"resolution": 64, "subsets": [SUB]}]}
    assert fake_rules.check_dataset(config, {"train_batch_size": 2.0}) == [
        "voluptuous.error.MultipleInvalid: expected int for object value @ data['train_batch_size']"]
    assert fake_rules.check_training({"mixed_precision": "fp32"}) == [
        "ValueError: Unknown mixed_precision mode: fp32. Choose between ['no', 'fp8', 'fp16', 'bf16']"]
    assert fake_rules.check_training({"persistent_data_loader_workers": True}) == []  # 8 workers by default
    assert fake_rules.check_training({"network_args": ["conv_dim=4", "x"], "optimizer_args": "a=1=2"}) == [
        "ValueError: not enough values to unpack (expected 2, got 1)", "ValueError: too many values to unpack (expected 2)"]
    assert fake_rules.check_training({"persistent_data_loader_workers": True, "max_data_loader_n_workers": 0}) == [
        fake_rules.PERSISTENT_WORKERS]


def test_the_fake_trainer_does_not_import_bespoke():
    for path in (FAKE, FAKE_DIR / "fake_rules.py"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from) bespoke\b", text, re.MULTILINE), path


def test_the_table_is_written_with_toml(isolated_project):
    run_dir = planned_run(isolated_project)
    apply_bad_config(run_dir, BadConfig("x", training={"seed": None, "network_dim": 2},
                                        dataset={"batch_size": 1}, subset={"num_repeats": 3}))
    training = toml.load(run_dir / "config" / "training.toml")
    assert "seed" not in training["training"] and training["network"]["network_dim"] == 2
    dataset = toml.load(run_dir / "config" / "dataset.toml")["datasets"][0]
    assert dataset["batch_size"] == 1 and dataset["subsets"][0]["num_repeats"] == 3
