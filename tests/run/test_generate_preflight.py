"""`generate` passes what the run trained with (tokenizer cache, long prompts, attention, precision) and runs
its own preflight inside its launch (gen_img.py's stages, then gen_img.py in the same process); the fake gen_img.py rejects what the real one rejects."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import toml
from click.testing import CliRunner
from locations import FAKE_DIR
from lora_fixtures import make_run_with_checkpoints

from bespoke.cli import main
from bespoke.errors import PreflightError
from bespoke.kohya.gen_img import GenImgInputs
from bespoke.kohya.preflight import GATE_SCRIPT
from bespoke.run.generate import GenerateRequest, GenPrompt, gen_img_args, generate
from bespoke.settings import load_settings


@pytest.fixture
def gen_run(isolated_project, monkeypatch, tmp_path):
    (isolated_project / "base.safetensors").write_bytes(b"not really a model")
    run = make_run_with_checkpoints(isolated_project, epochs=2, dim=4, alpha=2)
    monkeypatch.setenv("FAKE_GEN_IMG_RECORD", str(tmp_path / "gen_seen.json"))
    return run, load_settings().with_overrides(sd_scripts=FAKE_DIR, sd_python=sys.executable)


def _set_training(run, **values):
    path = run / "config" / "training.toml"
    data = toml.loads(path.read_text())
    data["training"].update(values)
    path.write_text(toml.dumps(data))


def test_gen_img_args_carry_the_tokenizer_cache_and_long_prompts(tmp_path):
    common = GenImgInputs(base_model="/m/b.safetensors", outdir=tmp_path, prompt_file=tmp_path / "p.txt",
                          checkpoint=tmp_path / "c.safetensors", prompts=[GenPrompt("a", "x")], mul=1.0,
                          sampler="ddim")
    args = gen_img_args(common, {"tokenizer_cache_dir": "/tok", "max_token_length": 225, "clip_skip": 2,
                                 "sdpa": True, "v2": False})
    text = " ".join(args)
    assert "--tokenizer_cache_dir /tok" in text and "--max_embeddings_multiples 3" in text
    assert "--clip_skip 2" in text and "--sdpa" in args and "--v2" not in args
    assert "--max_token_length" not in text  # gen_img.py has no such option: argparse would exit 2
    plain = gen_img_args(common, {})
    assert "--tokenizer_cache_dir" not in plain and "--max_embeddings_multiples" not in plain


@pytest.mark.slow
def test_offline_without_a_tokenizer_stops_before_gen_img_and_the_cache_dir_fixes_it(gen_run, monkeypatch,
                                                                                     tmp_path):
    run, settings = gen_run
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    request = GenerateRequest(epoch=1, seeds=(1,))
    with pytest.raises(PreflightError) as info:
        generate(settings, run, request)
    assert "tokenizer FAIL" in str(info.value) and "tokenizer_cache_dir" in str(info.value)
    assert not (tmp_path / "gen_seen.json").exists()  # the gate stopped the launch before gen_img.py's own code
    outdir = run / "generated" / "e000001"
    refused = json.loads((outdir / "generate.json").read_text())
    assert refused["status"] == "refused" and "tokenizer FAIL" in refused["reason"]
    assert str(GATE_SCRIPT) in refused["argv"] and not list(outdir.glob("*.png"))
    assert "bespoke preflight: the trainer would stop: tokenizer FAIL" in (outdir / "generate.log").read_text()
    command = CliRunner().invoke(main, ["--sd-scripts", str(FAKE_DIR), "--python", sys.executable, "generate",
                                        str(run), "--epoch", "1", "--seeds", "1", "--no-process"])
    assert command.exit_code == PreflightError.exit_code == 7, command.output  # refused: its own exit code
    assert "tokenizer FAIL" in command.output and not (tmp_path / "gen_seen.json").exists()
    cache = tmp_path / "tok"
    (cache / "openai_clip-vit-large-patch14").mkdir(parents=True)
    _set_training(run, tokenizer_cache_dir=str(cache), max_token_length=225)
    record = generate(settings, run, request)
    assert record["status"] == "finished"
    assert [p.name for p in (run / "generated").glob("e000001.*")]  # the refused attempt, moved aside, kept
    assert "bespoke preflight passed: 5 stages" in (outdir / "generate.log").read_text()
    argv = json.loads((tmp_path / "gen_seen.json").read_text())["argv"]
    assert argv[argv.index("--tokenizer_cache_dir") + 1] == str(cache)
    assert argv[argv.index("--max_embeddings_multiples") + 1] == "3"


@pytest.mark.slow
def test_generate_preflight_reports_a_missing_attention_backend_and_no_gpu(gen_run, monkeypatch):
    run, settings = gen_run
    _set_training(run, xformers=True)
    monkeypatch.setenv("FAKE_TRAINER_MISSING", "xformers")
    with pytest.raises(PreflightError, match="attention FAIL: ImportError: No xformers"):
        generate(settings, run, GenerateRequest(epoch=1, seeds=(1,)))
    monkeypatch.setenv("FAKE_TRAINER_GPU", "none")  # the run trained in bf16: gen_img.py gets --bf16
    with pytest.raises(PreflightError, match="mixed precision NEEDS-HARDWARE"):
        generate(settings, run, GenerateRequest(epoch=1, seeds=(1,)))
    record = generate(settings, run, GenerateRequest(epoch=1, seeds=(1,), preflight=False))
    assert record["status"] == "finished"  # --no-preflight launches anyway (the fake is lenient there)


def test_the_fake_gen_img_rejects_options_the_real_one_lacks_and_needs_a_tokenizer_offline(tmp_path):
    import os

    base = [sys.executable, str(FAKE_DIR / "gen_img.py"), "--ckpt", "m", "--outdir", str(tmp_path)]
    bad = subprocess.run([*base, "--full_fp16"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unrecognized arguments: --full_fp16" in bad.stderr
    long = subprocess.run([*base, "--max_token_length", "225"], capture_output=True, text=True, timeout=60)
    assert long.returncode == 2
    offline = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty_hf")}
    done = subprocess.run([*base, "--prompt", "x"], capture_output=True, text=True, timeout=60, env=offline)
    assert done.returncode == 1 and "expected str, bytes or os.PathLike object, not NoneType" in done.stderr
