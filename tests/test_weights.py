"""`bespoke inspect`: LoRA metadata read back from real safetensors files written here with the keys
sd-scripts writes (FACTS.md §4), bad files, and the check against a run's config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from bespoke.cli import main
from bespoke.run.paths import write_manifest
from bespoke.kohya.metadata import WeightsError, check_against_run, inspect_path, read_metadata, summarize

TAGS = {"10_bespoke_baby": {"pixel art": 203, "24x24": 203, "portrait of bespoke punk lad": 120,
                            "portrait of bespoke punk lady": 83, "brown hair": 40, "blue solid background": 31}}


@pytest.fixture
def wide_console(monkeypatch):
    """Rich wraps tables at 80 columns when not on a terminal: widen the console so cells stay whole."""
    from bespoke.console import console

    # the private field, so that undoing restores "not set" (the public setter would pin the old width)
    monkeypatch.setattr(console, "_width", 220)
    return console


def sd_scripts_metadata(epoch=8, num_epochs=10, dim=32, alpha=16, dataset_config=True, **overrides) -> dict:
    """The metadata train_network.py writes (all strings), for a 203-image, 10-repeat, batch-4 run."""
    datasets = [{
        "is_dreambooth": True, "batch_size_per_device": 4, "num_train_images": 2030, "num_reg_images": 0,
        "resolution": [512, 512], "enable_bucket": True, "min_bucket_reso": 256, "max_bucket_reso": 1024,
        "tag_frequency": TAGS, "bucket_info": {"buckets": {"0": {"resolution": [512, 512], "count": 2030}},
                                               "mean_img_ar_error": 0.0},
        "subsets": [{"img_count": 203, "num_repeats": 10, "color_aug": False, "flip_aug": False,
                     "random_crop": False, "shuffle_caption": True, "keep_tokens": 3,
                     "image_dir": "10_bespoke_baby", "class_tokens": "bespoke_baby", "is_reg": False}],
    }]
    meta = {
        "ss_session_id": "1234567890", "ss_training_started_at": "1762819200.5",
        "ss_output_name": "bespoke_baby_sd15_lora_keep_tokens_3", "ss_learning_rate": "0.0001",
        "ss_text_encoder_lr": "5e-05", "ss_unet_lr": "0.0001", "ss_num_train_images": "2030",
        "ss_num_reg_images": "0", "ss_num_batches_per_epoch": "508", "ss_num_epochs": str(num_epochs),
        "ss_gradient_checkpointing": "True", "ss_gradient_accumulation_steps": "1",
        "ss_max_train_steps": "5080", "ss_lr_warmup_steps": "100", "ss_lr_scheduler": "cosine_with_restarts",
        "ss_network_module": "networks.lora", "ss_network_dim": str(dim), "ss_network_alpha": str(float(alpha)),
        "ss_network_dropout": "None", "ss_mixed_precision": "bf16", "ss_full_fp16": "False", "ss_v2": "False",
        "ss_base_model_version": "sd_v1", "ss_clip_skip": "None", "ss_max_token_length": "225",
        "ss_cache_latents": "True", "ss_seed": "42", "ss_lowram": "False", "ss_noise_offset": "0.05",
        "ss_multires_noise_iterations": "6", "ss_multires_noise_discount": "0.3", "ss_adaptive_noise_scale": "None",
        "ss_zero_terminal_snr": "False", "ss_training_comment": "None", "ss_max_grad_norm": "1.0",
        "ss_caption_dropout_rate": "0.05", "ss_caption_dropout_every_n_epochs": "0",
        "ss_caption_tag_dropout_rate": "0.0", "ss_face_crop_aug_range": "None", "ss_prior_loss_weight": "1.0",
        "ss_min_snr_gamma": "5.0", "ss_scale_weight_norms": "None", "ss_ip_noise_gamma": "None",
        "ss_debiased_estimation": "False", "ss_noise_offset_random_strength": "False",
        "ss_ip_noise_gamma_random_strength": "False", "ss_loss_type": "l2", "ss_huber_schedule": "snr",
        "ss_huber_scale": "1", "ss_huber_c": "0.1", "ss_fp8_base": "False", "ss_fp8_base_unet": "False",
        "ss_validation_seed": "None", "ss_validation_split": "0.0", "ss_max_validation_steps": "None",
        "ss_validate_every_n_epochs": "None", "ss_validate_every_n_steps": "None", "ss_num_validation_images": "0",
        "ss_resize_interpolation": "None", "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit",
        "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
        "ss_new_sd_model_hash": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
        "ss_sd_model_hash": "cc6cb27103417325ff94f52b7a5d2dde45a7515b25c255d8e396c90014281516"[:8],
        "ss_sd_scripts_commit_hash": "206adb64c0c1a7b1a2c7f0e0d4b5f8e9a1b2c3d4",
        "ss_epoch": str(epoch), "ss_steps": str(508 * epoch), "ss_training_finished_at": "1762822800.25",
        "sshs_model_hash": "abc", "sshs_legacy_hash": "def",
        "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers", "modelspec.title": "bespoke_baby_sd15_lora_keep_tokens_3",
        "modelspec.resolution": "512x512", "modelspec.prediction_type": "epsilon",
        "modelspec.date": "2025-11-10T17:30:00",
    }
    if dataset_config:
        meta.update({"ss_datasets": json.dumps(datasets), "ss_tag_frequency": json.dumps(TAGS),
                     "ss_dataset_dirs": json.dumps({"10_bespoke_baby": {"n_repeats": 10, "img_count": 203}})})
    else:  # no --dataset_config: the legacy top-level keys (train_network.py l.1160-1200)
        meta.update({"ss_batch_size_per_device": "4", "ss_total_batch_size": "4", "ss_resolution": "(512, 512)",
                     "ss_enable_bucket": "True", "ss_min_bucket_reso": "256", "ss_max_bucket_reso": "1024",
                     "ss_keep_tokens": "3", "ss_dataset_dirs": json.dumps({"10_bespoke_baby": {"n_repeats": 10,
                                                                                               "img_count": 203}}),
                     "ss_reg_dataset_dirs": "{}", "ss_tag_frequency": json.dumps(TAGS),
                     "ss_bucket_info": json.dumps({"buckets": {"0": {"resolution": [512, 512], "count": 2030}}})})
    meta.update({k: str(v) for k, v in overrides.items()})
    return meta


def lora_tensors(dim=32, alpha=16.0, modules=3) -> dict:
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(modules):
        base = f"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_{'qkv'[i]}"
        tensors[f"{base}.lora_down.weight"] = rng.normal(size=(dim, 320)).astype(np.float16)
        tensors[f"{base}.lora_up.weight"] = np.zeros((320, dim), np.float16)
        tensors[f"{base}.alpha"] = np.array(alpha, np.float16)
    return tensors


def write_lora(path: Path, tensor_dim=32, tensor_alpha=16.0, **meta) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(lora_tensors(tensor_dim, tensor_alpha), str(path), metadata=sd_scripts_metadata(**meta))
    return path


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


def make_run_with_checkpoints(root: Path, epochs=3, dim=4, alpha=2, bad_epoch=None) -> Path:
    """A run folder as train leaves it: run.json, config/training.toml, model/<name>-00000N + <name>."""
    import toml

    run = root / "outputs" / "r512-test-abc123"
    (run / "config").mkdir(parents=True)
    (run / "config" / "training.toml").write_text(toml.dumps({"network": {
        "network_module": "networks.lora", "network_dim": dim, "network_alpha": alpha},
        "optimizer": {"learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 5e-5,
                      "lr_scheduler": "cosine_with_restarts"},
        "training": {"max_train_epochs": epochs, "output_name": "tiny", "mixed_precision": "bf16",
                     "sample_sampler": "pndm", "pretrained_model_name_or_path": str(root / "base.safetensors")},
    }))
    write_manifest(run, {"id": run.name, "status": "finished", "resolution": 512, "preset": "test"})
    for epoch in range(1, epochs + 1):
        name = "tiny" if epoch == epochs else f"tiny-{epoch:06d}"
        wrong = epoch == bad_epoch
        save_file(lora_tensors(dim * (2 if wrong else 1), float(alpha)), str(run / "model" / f"{name}.safetensors")
                  if (run / "model").is_dir() else _mk(run / "model" / f"{name}.safetensors"),
                  metadata=sd_scripts_metadata(epoch=epoch, num_epochs=epochs, dim=dim * (2 if wrong else 1),
                                               alpha=alpha, ss_output_name="tiny", ss_steps=epoch * 2))
    return run


def _mk(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


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
