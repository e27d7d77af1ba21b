"""The fake train_network.py behaves like the real one where bespoke relies on it (FACTS.md §1-4).

These run the fake directly with this Python (no accelerate: fast); test_train.py launches it for real.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import toml
from locations import FAKE_DIR

FAKE = FAKE_DIR / "train_network.py"
SAMPLE_RE = re.compile(r"^(?:(?P<name>.*)_)?(?:e(?P<epoch>\d{6,})|(?P<step>\d{6,}))_(?P<prompt>\d{2,})_"
                       r"(?P<ts>\d{14})(?:_(?P<seed>\d+))?\.png$")


def write_configs(tmp: Path, images: int = 4, epochs: int = 2, **training) -> tuple[Path, Path, Path]:
    """training.toml (in sections, like bespoke writes it), dataset.toml and prompts.txt for the fake."""
    from bespoke.dataset.synthetic import write_dataset

    image_dir = tmp / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    if images:
        write_dataset(image_dir, count=images, seed=3)
    prompts = tmp / "prompts.txt"
    prompts.write_text("# a comment\n\npunk one --w 64 --h 64 --d 7\npunk two --w 64 --h 64\n", encoding="utf-8")
    out = tmp / "model"
    values = {"output_dir": str(out), "output_name": "tiny", "max_train_epochs": epochs, "save_every_n_epochs": 1,
              "sample_every_n_epochs": 1, "sample_at_first": True, "sample_prompts": str(prompts),
              "network_dim": 4, "network_alpha": 2.0, "learning_rate": 1e-4}
    values.update(training)
    cfg = tmp / "training.toml"
    cfg.write_text(toml.dumps({"model": {"output_dir": values.pop("output_dir"), "output_name": values.pop("output_name")},
                               "training": values}), encoding="utf-8")
    dataset = tmp / "dataset.toml"
    dataset.write_text(toml.dumps({"general": {"caption_extension": ".txt"},
                                   "datasets": [{"resolution": 64, "batch_size": 2,
                                                 "subsets": [{"image_dir": str(image_dir), "num_repeats": 1}]}]}),
                       encoding="utf-8")
    return cfg, dataset, out


def run_fake(*args, env_extra=None, timeout=60):
    import os

    env = {**os.environ, "FAKE_TRAINER_STEP_SECONDS": "0", **(env_extra or {})}
    done = subprocess.run([sys.executable, str(FAKE), *map(str, args)], capture_output=True, env=env,
                          timeout=timeout)
    # decoded by hand: text=True would turn tqdm's \r into \n
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def meta(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), "np") as handle:
        return handle.metadata()


def test_clean_run_writes_real_names_metadata_and_progress(tmp_path):
    cfg, dataset, out = write_configs(tmp_path)
    done = run_fake("--config_file", str(cfg)[:-5], "--dataset_config", dataset)  # ".toml" appended
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.glob("*.safetensors")) == ["tiny-000001.safetensors", "tiny.safetensors"]
    first, final = meta(out / "tiny-000001.safetensors"), meta(out / "tiny.safetensors")
    assert (first["ss_epoch"], final["ss_epoch"], final["ss_num_epochs"]) == ("1", "2", "2")
    assert final["ss_network_dim"] == "4" and final["ss_network_alpha"] == "2.0"
    assert json.loads(final["ss_datasets"])[0]["resolution"] == [64, 64]
    assert all(isinstance(v, str) for v in final.values())
    samples = sorted(p.name for p in (out / "sample").glob("*.png"))
    assert len(samples) == 6  # 2 prompts x (before training + 2 epochs)
    parsed = [SAMPLE_RE.match(name) for name in samples]
    assert all(parsed)
    assert sorted({(m["epoch"], m["prompt"], m["seed"]) for m in parsed}) == [
        ("000000", "00", "7"), ("000000", "01", None), ("000001", "00", "7"), ("000001", "01", None),
        ("000002", "00", "7"), ("000002", "01", None)]
    from PIL import Image

    assert Image.open(out / "sample" / samples[0]).size == (64, 64)
    assert re.search(r"^epoch 1/2$", done.stdout, re.M) and re.search(r"^epoch 2/2$", done.stdout, re.M)
    assert "running training" in done.stdout and "saving checkpoint: " in done.stdout
    assert "\rsteps: 100%" in done.stderr and "4/4" in done.stderr and "avr_loss=" in done.stderr


def test_cli_wins_over_file_and_unknown_keys_are_ignored(tmp_path):
    cfg, dataset, out = write_configs(tmp_path, network_dimm=8)  # typo: silently accepted, like sd-scripts
    done = run_fake("--config_file", cfg, "--dataset_config", dataset, "--network_dim", "6", "--max_train_epochs", "1")
    assert done.returncode == 0, done.stderr
    final = meta(out / "tiny.safetensors")
    assert final["ss_network_dim"] == "6" and final["ss_num_epochs"] == "1"
    assert not (out / "tiny-000001.safetensors").exists()


def test_missing_config_logs_not_found_and_exits_1(tmp_path):
    done = run_fake("--config_file", tmp_path / "nope", "--dataset_config", tmp_path / "d.toml")
    assert done.returncode == 1
    assert f"{tmp_path / 'nope'}.toml not found." in done.stderr


def test_cli_typo_is_an_argparse_error(tmp_path):
    cfg, dataset, _ = write_configs(tmp_path)
    done = run_fake("--config_file", cfg, "--dataset_config", dataset, "--network_dimm", "8")
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr


def test_empty_image_dir_is_no_data_found_exit_0_nothing_written(tmp_path):
    cfg, dataset, out = write_configs(tmp_path, images=0)
    done = run_fake("--config_file", cfg, "--dataset_config", dataset)
    assert done.returncode == 0
    assert "No data found" in done.stderr
    assert not out.exists()


def test_save_state_and_resume_continue_after_the_saved_epoch(tmp_path):
    cfg, dataset, out = write_configs(tmp_path, epochs=3, save_state=True)
    done = run_fake("--config_file", cfg, "--dataset_config", dataset, env_extra={"FAKE_TRAINER_FAIL_AT_STEP": "5"})
    assert done.returncode == 1 and "RuntimeError: fake trainer failure at step 5" in done.stderr
    state = out / "tiny-000002-state"
    assert json.loads((state / "train_state.json").read_text()) == {"current_epoch": 2, "current_step": 4}
    assert not (out / "tiny.safetensors").exists()
    done = run_fake("--config_file", cfg, "--dataset_config", dataset, "--resume", state)
    assert done.returncode == 0, done.stderr
    assert "epoch 1/3" not in done.stdout and "epoch 3/3" in done.stdout
    # like the real trainer: the global step restarts at 0 on --resume, so the final ss_steps is 2, not 6
    assert meta(out / "tiny.safetensors")["ss_steps"] == "2"


def test_setup_parser_has_the_real_option_names_and_no_torch():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import train_network; "
            "p = train_network.setup_parser(); d = {a.dest for a in p._actions}; "
            "print(all(k in d for k in ('resize_interpolation', 'network_dim', 'save_state', 'sample_at_first')), "
            "len(d) > 150, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(FAKE_DIR)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]


@pytest.mark.parametrize("knob", ["FAKE_TRAINER_DROP_OPTIONS"])
def test_drop_options_pretends_an_older_sd_scripts(knob):
    import os

    code = ("import sys; sys.path.insert(0, sys.argv[1]); import train_network; "
            "print('resize_interpolation' in {a.dest for a in train_network.setup_parser()._actions})")
    env = {**os.environ, knob: "resize_interpolation"}
    out = subprocess.run([sys.executable, "-c", code, str(FAKE_DIR)], capture_output=True, text=True, check=True,
                         env=env)
    assert out.stdout.strip() == "False"
