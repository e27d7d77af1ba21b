"""`bespoke inspect`: LoRA metadata read back from real safetensors files written here with the keys
sd-scripts writes (FACTS.md §4), bad files, and the check against a run's config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from lora_fixtures import make_run_with_checkpoints, write_lora

from bespoke.cli import main
from bespoke.kohya.lora_check import check_against_run
from bespoke.kohya.metadata import WeightsError, read_metadata, summarize
from bespoke.run.inspect import inspect_path


@pytest.fixture
def wide_console(monkeypatch):
    """Rich wraps tables at 80 columns when not on a terminal: widen the console so cells stay whole."""
    from bespoke.console import console

    # the private field, so that undoing restores "not set" (the public setter would pin the old width)
    monkeypatch.setattr(console, "_width", 220)
    return console


def test_summary_reads_what_sd_scripts_writes(tmp_path):
    path = write_lora(tmp_path / "bespoke_baby_sd15_lora_keep_tokens_3-000008.safetensors")
    s = summarize(path)
    assert (s.epoch, s.num_epochs, s.steps, s.max_train_steps) == (8, 10, 4064, 5080)
    assert (s.dim, s.alpha, s.tensor_dim, s.tensor_alpha) == (32, 16.0, 32, 16.0)
    assert (s.learning_rate, s.unet_lr, s.text_encoder_lr) == (1e-4, 1e-4, 5e-5)
    assert s.lr_scheduler == "cosine_with_restarts" and s.lr_warmup_steps == 100
    assert s.optimizer.endswith("AdamW8bit") and s.mixed_precision == "bf16" and s.seed == 42
    assert s.base_model_name == "v1-5-pruned-emaonly.safetensors"
    assert s.base_model_hash.startswith("6ce0161689") and s.base_model_legacy_hash == "cc6cb271"
    assert s.resolution == (512, 512)  # from ss_datasets: there is no ss_resolution with a dataset config
    assert "ss_resolution" not in read_metadata(path)
    d = s.dataset
    assert (d.images, d.reg_images, d.batch_size, d.batches_per_epoch, d.repeats) == (2030, 0, 4, 508, [10])
    assert d.buckets == [{"resolution": [512, 512], "count": 2030}]
    assert d.subsets[0]["image_dir"] == "10_bespoke_baby" and d.subsets[0]["img_count"] == 203
    assert s.tag_frequency[:2] == [("pixel art", 203), ("24x24", 203)] and s.tags_total == 6
    assert s.tag_frequency[2] == ("portrait of bespoke punk lad", 120)
    assert s.sd_scripts_commit.startswith("206adb64")
    assert s.tensor_count == 9 and s.file_size == path.stat().st_size
    assert s.training_started_at and s.training_started_at < s.training_finished_at
    assert not s.is_final_name and check_against_run(s, {}) == []


def test_legacy_metadata_and_list_valued_text_encoder_lr(tmp_path):
    path = write_lora(tmp_path / "x.safetensors", dataset_config=False, ss_text_encoder_lr="[5e-05]")
    s = summarize(path)
    assert s.resolution == (512, 512)
    assert s.dataset.repeats == [10] and s.dataset.batch_size == 4
    assert s.dataset.buckets[0]["count"] == 2030
    assert s.text_encoder_lr == 5e-5
    assert s.tag_frequency[0] == ("pixel art", 203)


def test_read_metadata_matches_safetensors_itself(tmp_path):
    from safetensors import safe_open

    path = write_lora(tmp_path / "x.safetensors")
    with safe_open(str(path), framework="np") as handle:
        assert read_metadata(path) == handle.metadata()


RUN_TRAINING = {"network_dim": 32, "network_alpha": 16, "learning_rate": 1e-4, "unet_lr": 1e-4,
                "text_encoder_lr": 5e-5, "lr_scheduler": "cosine_with_restarts", "max_train_epochs": 10,
                "output_name": "bespoke_baby_sd15_lora_keep_tokens_3"}


def test_check_against_run_agrees_and_flags_each_key(tmp_path):
    good = summarize(write_lora(tmp_path / "bespoke_baby_sd15_lora_keep_tokens_3-000008.safetensors"))
    assert check_against_run(good, RUN_TRAINING) == []
    # the user's question: "which dim did I train with?" -- a 128/128 claim is caught by metadata and tensors
    problems = check_against_run(good, {**RUN_TRAINING, "network_dim": 128, "network_alpha": 128})
    assert "network_dim 32 in metadata and tensors, 128 in the run's config" in problems
    assert "network_alpha 16 in metadata and tensors, 128 in the run's config" in problems
    half = summarize(write_lora(tmp_path / "h.safetensors", tensor_dim=16, dim=32))
    assert check_against_run(half, {"network_dim": 32}) == [
        "network_dim 16 in tensors, 32 in the run's config"]
    changed = {**RUN_TRAINING, "learning_rate": 2e-4, "text_encoder_lr": [1e-5], "lr_scheduler": "constant",
               "max_train_epochs": 9, "output_name": "other"}
    text = " | ".join(check_against_run(good, changed))
    for needle in ("learning_rate 0.0001 in metadata, 0.0002", "text_encoder_lr 5e-05 in metadata, 1e-05",
                   "lr_scheduler cosine_with_restarts in metadata, constant",
                   "num_epochs 10 in metadata, max_train_epochs 9", "output_name"):
        assert needle in text


def test_metadata_dim_disagreeing_with_tensors_and_name_vs_epoch(tmp_path):
    lying = summarize(write_lora(tmp_path / "n-000003.safetensors", tensor_dim=8, dim=32, epoch=4,
                                 ss_output_name="n"))
    problems = check_against_run(lying, {})
    assert any("network_dim 32 in metadata but the tensors have rank 8" in p for p in problems)
    assert any("file name says epoch 3 but ss_epoch is 4" in p for p in problems)
    early = summarize(write_lora(tmp_path / "n.safetensors", epoch=7, num_epochs=10, ss_output_name="n"))
    assert early.is_final_name
    assert any("final file but ss_epoch 7 of 10" in p for p in check_against_run(early, {}))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = write_lora(tmp_path / "good.safetensors")
    data = good.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    cases = {}

    def put(name, content):
        path = tmp_path / name
        path.write_bytes(content)
        return path

    cases["empty"] = (put("empty.safetensors", b""), "too short to be a safetensors file")
    cases["tiny"] = (put("tiny.safetensors", b"\x01\x02\x03"), "too short")
    cases["ckpt"] = (put("model.ckpt", b"PK\x03\x04" + os.urandom(200)), "not a safetensors file (bad header length")
    cases["cut_header"] = (put("cut.safetensors", data[: 8 + header_len // 2]), "truncated: header says")
    cases["cut_data"] = (put("cut2.safetensors", data[:-100]), "truncated: tensors need")
    cases["not_json"] = (put("nj.safetensors", (20).to_bytes(8, "little") + b"\xff" * 20 + b"\0" * 10),
                         "header is not JSON")
    header = json.dumps({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    cases["no_meta"] = (put("plain.safetensors", len(header).to_bytes(8, "little") + header + b"\0" * 4),
                        "no sd-scripts metadata")
    cases["folder"] = (tmp_path / "a_folder", "is a folder")
    cases["folder"][0].mkdir()
    cases["missing"] = (tmp_path / "nope.safetensors", "no such file")
    return cases


def test_bad_files_give_one_line_errors_and_stay_untouched(tmp_path):
    for name, (path, needle) in _bad_files(tmp_path).items():
        before = path.read_bytes() if path.is_file() else None
        with pytest.raises(WeightsError) as info:
            summarize(path)
        message = str(info.value)
        assert needle in message, (name, message)
        assert "\n" not in message and str(path) in message
        assert info.value.exit_code == 2
        if before is not None:
            assert path.read_bytes() == before


def test_cli_inspect_bad_file_is_one_clean_error(tmp_path):
    cases = _bad_files(tmp_path)
    result = CliRunner().invoke(main, ["inspect", str(cases["cut_data"][0])])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "truncated" in result.output
    assert "Traceback" not in result.output


def test_inspect_run_folder_one_line_per_checkpoint_and_mismatch(tmp_path, wide_console):
    run = make_run_with_checkpoints(tmp_path, epochs=3, bad_epoch=2)
    result = inspect_path(run)
    assert result["kind"] == "folder"
    assert [e["summary"].epoch for e in result["checkpoints"]] == [1, 2, 3]
    assert [e["file"] for e in result["checkpoints"]] == ["tiny-000001.safetensors", "tiny-000002.safetensors",
                                                          "tiny.safetensors"]
    assert result["checkpoints"][0]["mismatches"] == []
    assert result["checkpoints"][1]["mismatches"] == ["network_dim 8 in metadata and tensors, 4 in the run's config"]
    # a single file inside a run is checked against that run as well
    single = inspect_path(run / "model" / "tiny-000002.safetensors")
    assert single["run"] == str(run.resolve()) and single["mismatches"]

    cli = CliRunner()
    out = cli.invoke(main, ["inspect", str(run)])
    assert out.exit_code == 0, out.output
    assert "tiny-000001.safetensors" in out.output and "network_dim 8 in metadata" in out.output
    assert "1 checkpoint(s) disagree" in out.output
    data = json.loads(cli.invoke(main, ["inspect", str(run), "--json"]).stdout)
    assert [c["summary"]["epoch"] for c in data["checkpoints"]] == [1, 2, 3]


def test_cli_inspect_file_panel_and_json(tmp_path, wide_console):
    path = write_lora(tmp_path / "bespoke_baby_sd15_lora_keep_tokens_3-000008.safetensors")
    cli = CliRunner()
    out = cli.invoke(main, ["inspect", str(path)])
    assert out.exit_code == 0, out.output
    for needle in ("8 of 10", "dim 32 / alpha 16", "cosine_with_restarts", "v1-5-pruned-emaonly", "512x512",
                   "2030 images incl. repeats", "repeats 10", "pixel art 203", "206adb64"):
        assert needle in out.output, needle
    data = json.loads(cli.invoke(main, ["inspect", str(path), "--json"]).stdout)
    assert data["summary"]["dim"] == 32 and data["summary"]["dataset"]["repeats"] == [10]
    assert data["summary"]["tag_frequency"][0] == {"tag": "pixel art", "count": 203}


@pytest.mark.parametrize(("fields", "says"), [
    ({"status": "finished", "demo": True, "simulated": True}, "a demo run"),
    ({"status": "planned"}, "status planned"),
])
def test_inspect_of_a_run_without_checkpoints_is_a_run_state_error(isolated_project, fields, says):
    """A run folder with no LoRA yet (a demo run: simulated samples; a planned run) is a run in the wrong state:
    exit 4 (README's exit codes), with what it is; a plain folder without checkpoints stays a bad argument."""
    from manifest_helpers import write_run_json

    run = isolated_project / "outputs" / "64-demo-0000abcd"
    write_run_json(run, id=run.name, resolution=64, **fields)
    (run / "model" / "sample").mkdir(parents=True)
    result = CliRunner().invoke(main, ["inspect", run.name])
    assert result.exit_code == 4, result.output
    assert says in result.output and "no .safetensors checkpoints" in result.output
    assert len(result.output.strip().splitlines()) == 1
    plain = isolated_project / "empty"
    plain.mkdir()
    assert CliRunner().invoke(main, ["inspect", str(plain)]).exit_code == 2
