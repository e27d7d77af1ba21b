"""LoRA checkpoints as sd-scripts writes them (real safetensors files with its metadata keys, FACTS.md §4), and
run folders holding them, for the tests of inspect, generate and the checkpoint discovery."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import toml
from manifest_helpers import write_run_json
from safetensors.numpy import save_file

TAGS = {"10_bespoke_baby": {"pixel art": 203, "24x24": 203, "portrait of bespoke punk lad": 120,
                            "portrait of bespoke punk lady": 83, "brown hair": 40, "blue solid background": 31}}


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


def make_run_with_checkpoints(root: Path, epochs=3, dim=4, alpha=2, bad_epoch=None) -> Path:
    """A run folder as train leaves it: run.json, config/training.toml, model/<name>-00000N + <name>."""
    run = root / "outputs" / "r512-test-abc123"
    (run / "config").mkdir(parents=True)
    (run / "config" / "training.toml").write_text(toml.dumps({"network": {
        "network_module": "networks.lora", "network_dim": dim, "network_alpha": alpha},
        "optimizer": {"learning_rate": 1e-4, "unet_lr": 1e-4, "text_encoder_lr": 5e-5,
                      "lr_scheduler": "cosine_with_restarts"},
        "training": {"max_train_epochs": epochs, "output_name": "tiny", "mixed_precision": "bf16",
                     "sample_sampler": "pndm", "pretrained_model_name_or_path": str(root / "base.safetensors")},
    }))
    write_run_json(run, **{"id": run.name, "status": "finished", "resolution": 512, "preset": "test"})
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
