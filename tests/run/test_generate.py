"""`bespoke generate`: the gen_img.py launch, predictable names, the manifest, reuse/force, failures --
with the fake gen_img.py (tests/fakes/sd_scripts) launched through the real `accelerate launch`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from locations import FAKE_DIR
from lora_fixtures import make_run_with_checkpoints
from PIL import Image

from bespoke.cli import main
from bespoke.errors import ConfigError, RunError, TrainerError, UsageError
from bespoke.kohya.gen_img import GenImgInputs
from bespoke.pixels.metrics import colors_nearest
from bespoke.run.generate import (
    GenerateRequest,
    GenPrompt,
    baseline_prompts,
    checkpoint_for_epoch,
    gen_img_args,
    generate,
    parse_seeds,
    render_gen_prompts,
)
from bespoke.settings import load_settings

FAKES = FAKE_DIR
FAKE_GEN = FAKES / "gen_img.py"


def test_parse_seeds():
    assert parse_seeds("1-8") == tuple(range(1, 9))
    assert parse_seeds("1,2,5") == (1, 2, 5)
    assert parse_seeds(" 1-3, 10 ,2") == (1, 2, 3, 10)
    assert parse_seeds("42") == (42,)
    for bad, needle in (("a", "'a' is not a seed"), ("5-1", "runs backwards"), ("", "no seeds"),
                        ("-3", "not a seed"), ("1.5", "not a seed"), ("0-5000", "more than"),
                        ("99999999999", "below 2**32")):
        with pytest.raises(UsageError) as info:
            parse_seeds(bad)
        assert needle in str(info.value)


def test_prompt_file_one_line_per_prompt_and_seed():
    prompts = baseline_prompts()
    assert [p.name for p in prompts] == ["green_bg_lad", "brown_eyes_lady", "golden_earrings", "sunglasses_lad",
                                         "melon_lady", "cash_lad", "carbon_lad"]
    text = render_gen_prompts(prompts[:2], (1, 7))
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert len(lines) == 4
    assert lines[1].endswith("--w 512 --h 512 --s 30 --l 7.5 --d 7 --f green_bg_lad_s7.png")
    assert " --n blurry, smooth, gradients, antialiased, photography, realistic, 3d render --w" in lines[0]
    assert lines[2].startswith("pixel art, 24x24, portrait of bespoke punk lady, brown hair")
    with pytest.raises(ConfigError, match="cannot contain ' --'"):
        render_gen_prompts([GenPrompt("x", "a --bad prompt")], (1,))


def test_gen_img_args_follow_the_run(tmp_path):
    prompts = [GenPrompt("a", "pixel art", "", 512, 512, 30, 7.5)]
    common = GenImgInputs(base_model="/m/base.safetensors", outdir=tmp_path / "o", prompt_file=tmp_path / "p.txt",
                          checkpoint=tmp_path / "c.safetensors", prompts=prompts, mul=0.8, sampler="pndm")
    args = gen_img_args(common, {"mixed_precision": "bf16", "xformers": True})
    text = " ".join(args)
    assert "--network_module networks.lora --network_weights" in text and "--network_mul 0.8" in text
    assert "--images_per_prompt 1 --batch_size 1" in text and "--sampler pndm" in text
    assert "--bf16" in args and "--xformers" in args and "--fp16" not in args
    assert "--fp16" in gen_img_args(common, {"mixed_precision": "fp16", "sdpa": True})
    plain = gen_img_args(common, {"mixed_precision": "no"})
    assert "--fp16" not in plain and "--bf16" not in plain


# ---------------------------------------------------------------- the fake gen_img.py itself (no accelerate)


def _fake(args, tmp_path, env=None):
    import os

    return subprocess.run([sys.executable, str(FAKE_GEN), *args], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, **(env or {})}, timeout=60)


def test_fake_gen_img_names_metadata_and_epoch_quality(tmp_path):
    run = make_run_with_checkpoints(tmp_path, epochs=8, dim=4, alpha=2)
    prompts = tmp_path / "p.txt"
    prompts.write_text("# a comment line\n\npixel art, lad --n blurry --d 5 --f lad_s5.png\npixel art, lady --d 7\n")
    colours = {}
    for epoch in (1, 8):
        name = "tiny" if epoch == 8 else f"tiny-{epoch:06d}"
        out = tmp_path / f"out{epoch}"
        done = _fake(["--ckpt", "base", "--outdir", str(out), "--from_file", str(prompts), "--W", "512", "--H", "512",
                      "--steps", "4", "--sampler", "pndm", "--network_module", "networks.lora", "--network_weights",
                      str(run / "model" / f"{name}.safetensors"), "--network_mul", "1.0"], tmp_path)
        assert done.returncode == 0, done.stderr
        files = sorted(p.name for p in out.iterdir())
        assert files[1] == "lad_s5.png" and files[0].startswith("im_") and files[0].endswith("_000_7.png")
        with Image.open(out / "lad_s5.png") as img:
            assert img.size == (512, 512)
            assert img.text["seed"] == "5" and img.text["negative-prompt"] == "blurry"
            assert img.text["prompt"] == "pixel art, lad" and img.text["sampler"] == "pndm"
            colours[epoch] = colors_nearest(img)
        assert "prompt 1/2: pixel art, lad" in done.stderr
    assert colours[8] < 60 < 300 < colours[1]  # the LoRA of a later epoch draws cleaner punks
    # the same file name again gets _1, like the real first_available_filename
    again = _fake(["--ckpt", "base", "--outdir", str(tmp_path / "out8"), "--from_file", str(prompts)], tmp_path)
    assert again.returncode == 0 and (tmp_path / "out8" / "lad_s5_1.png").exists()


def test_fake_gen_img_failures(tmp_path):
    missing = _fake(["--ckpt", "base", "--from_file", "x", "--network_weights", "nope.safetensors"], tmp_path)
    assert missing.returncode == 1 and "FileNotFoundError" in missing.stderr and "Traceback" in missing.stderr
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\xff" * 64)
    bad = _fake(["--ckpt", "base", "--from_file", "x", "--network_weights", str(junk)], tmp_path)
    assert bad.returncode == 1 and "HeaderTooLarge" in bad.stderr
    unknown = _fake(["--ckpt", "base", "--no_such_option"], tmp_path)
    assert unknown.returncode == 2 and "unrecognized arguments" in unknown.stderr


# ---------------------------------------------------------------- generate end to end


@pytest.fixture
def gen_run(isolated_project):
    (isolated_project / "base.safetensors").write_bytes(b"not really a model")
    run = make_run_with_checkpoints(isolated_project, epochs=3, dim=4, alpha=2)
    settings = load_settings().with_overrides(sd_scripts=FAKES)
    return run, settings


def test_checkpoint_for_epoch(gen_run):
    run, _ = gen_run
    import shutil

    shutil.copy(run / "model" / "tiny-000001.safetensors", run / "model" / "tiny-step00000100.safetensors")
    assert checkpoint_for_epoch(run, 2)[1].name == "tiny-000002.safetensors"
    assert checkpoint_for_epoch(run, 3)[1].name == "tiny.safetensors"  # the last epoch: ss_epoch of the final file
    assert checkpoint_for_epoch(run, None) == (3, run / "model" / "tiny.safetensors")
    with pytest.raises(RunError, match="no checkpoint for epoch 7; available epochs: 1, 2, 3"):
        checkpoint_for_epoch(run, 7)


@pytest.mark.slow
def test_generate_fail_then_generate_reuse_and_force(gen_run, monkeypatch):
    """Three launches through the real accelerate: a failing gen_img.py, a good one, a forced redo."""
    run, settings = gen_run
    outdir = run / "generated" / "e000002"

    # 1. gen_img.py fails after 3 images: exit code, its own exception line, a manifest that says so
    monkeypatch.setenv("FAKE_GEN_IMG_FAIL_AFTER", "3")
    with pytest.raises(TrainerError) as info:
        generate(settings, run, GenerateRequest(epoch=2, seeds=(1, 5)))
    message = str(info.value)
    assert "gen_img.py exited with code 1" in message and "RuntimeError: fake failure after 3 images" in message
    assert "\n" not in message and info.value.exit_code == 5
    failed = json.loads((outdir / "generate.json").read_text())
    assert failed["status"] == "failed" and failed["exit_code"] == 1 and len(failed["missing"]) == 11
    assert any("fake failure" in line for line in failed["log_tail"])
    monkeypatch.delenv("FAKE_GEN_IMG_FAIL_AFTER")

    # 2. the CLI: the failed attempt is moved aside (nothing deleted), 14 predictable names, then `process`
    monkeypatch.setenv("BESPOKE_SD_SCRIPTS", str(FAKES))
    result = CliRunner().invoke(main, ["generate", str(run), "--epoch", "2", "--seeds", "1,5", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    aside = [p for p in (run / "generated").iterdir() if p.name.startswith("e000002.")]
    assert len(aside) == 1 and len(list(aside[0].glob("*.png"))) == 3
    assert json.loads((aside[0] / "generate.json").read_text())["status"] == "failed"
    assert record["outdir"] == str(outdir) and record["status"] == "finished" and record["exit_code"] == 0
    names = sorted(p.name for p in outdir.glob("*.png"))
    assert names == sorted(f"{p.name}_s{s}.png" for p in baseline_prompts() for s in (1, 5))
    with Image.open(outdir / "cash_lad_s5.png") as img:
        assert img.text["seed"] == "5" and img.text["steps"] == "30" and img.text["scale"] == "7.5"
        assert img.text["negative-prompt"].startswith("blurry, smooth")
    on_disk = json.loads((outdir / "generate.json").read_text())
    assert on_disk["schema_version"] == 1 and on_disk["seeds"] == [1, 5] and len(on_disk["images"]) == 14
    assert on_disk["checkpoint"]["path"].endswith("tiny-000002.safetensors")
    from bespoke.fsutil import sha256_file

    assert on_disk["checkpoint"]["sha256"] == sha256_file(run / "model" / "tiny-000002.safetensors")
    argv = on_disk["argv"]
    assert argv[1:3] == ["-m", "accelerate.commands.launch"] and "--num_cpu_threads_per_process" in argv
    assert argv[argv.index("--network_weights") + 1].endswith("tiny-000002.safetensors")
    assert "--bf16" in argv and argv[argv.index("--sampler") + 1] == "pndm"
    assert on_disk["env_overrides"]["PYTHONUNBUFFERED"] == "1" and on_disk["started"] and on_disk["finished"]
    assert (outdir / "generate.log").read_text().count("prompt ") >= 14
    assert record["report"]["samples"] == 14 and Path(record["report"]["report"]).is_file()

    # 3. the same request again: reused, nothing relaunched or rewritten
    before = {p.name: p.stat().st_mtime_ns for p in outdir.iterdir()}
    again = generate(settings, run, GenerateRequest(epoch=2, seeds=(1, 5)))
    assert again["reused"] is True
    assert {p.name: p.stat().st_mtime_ns for p in outdir.iterdir()} == before

    # 4. a different request into the same folder needs --force, and then keeps the old one aside
    with pytest.raises(RunError, match="holds a different finished generation; pass --force"):
        generate(settings, run, GenerateRequest(epoch=2, seeds=(3,)))
    assert {p.name: p.stat().st_mtime_ns for p in outdir.iterdir()} == before
    forced = generate(settings, run, GenerateRequest(epoch=2, seeds=(3,), force=True))
    assert forced["status"] == "finished"
    assert sorted(p.name for p in outdir.glob("*.png"))[0] == "brown_eyes_lady_s3.png"
    kept = [p for p in (run / "generated").iterdir() if p.name.startswith("e000002.") and p not in aside]
    assert len(kept) == 1 and sorted(p.name for p in kept[0].glob("*.png")) == names


@pytest.mark.slow
def test_generate_stopped_midway_is_marked_interrupted(gen_run, monkeypatch):
    import threading
    import time

    from bespoke.errors import Interrupted

    run, settings = gen_run
    outdir = run / "generated" / "e000001"
    monkeypatch.setenv("FAKE_GEN_IMG_HANG_AFTER", "2")
    stop = threading.Event()

    def stop_after_two_images():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(outdir.glob("*.png"))) < 2:
            time.sleep(0.1)
        stop.set()

    threading.Thread(target=stop_after_two_images, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(Interrupted, match="partial images and the log are in"):
        generate(settings, run, GenerateRequest(epoch=1, seeds=(1,)), stop=stop)
    assert time.monotonic() - started < 40  # the hanging gen_img.py was stopped, not waited for
    record = json.loads((outdir / "generate.json").read_text())
    assert record["status"] == "interrupted" and len(record["missing"]) == 5
    assert sorted(p.name for p in outdir.glob("*.png")) == ["brown_eyes_lady_s1.png", "green_bg_lad_s1.png"]


def test_generate_errors_before_launch(gen_run, tmp_path, monkeypatch):
    run, settings = gen_run
    with pytest.raises(ConfigError, match="no sd-scripts checkout configured"):
        generate(load_settings(), run, GenerateRequest(epoch=1))
    empty = tmp_path / "sd"
    empty.mkdir()
    with pytest.raises(ConfigError, match="sd: no gen_img.py; is this an up-to-date kohya-ss sd-scripts checkout"):
        generate(settings.with_overrides(sd_scripts=empty), run, GenerateRequest(epoch=1))
    bad = tmp_path / "bad.txt"
    bad.write_text("pixel art --zz 3\n")
    with pytest.raises(ConfigError, match="unknown option --zz"):
        generate(settings, run, GenerateRequest(epoch=1, prompts_file=bad))
    with pytest.raises(UsageError, match='did you mean "euler_a"'):
        generate(settings, run, GenerateRequest(epoch=1, sampler="euler-a"))
    with pytest.raises(UsageError, match="must be a positive number"):
        generate(settings, run, GenerateRequest(epoch=1, scale=0.0))
    monkeypatch.setenv("BESPOKE_SD_SCRIPTS", str(FAKES))
    result = CliRunner().invoke(main, ["generate", str(run), "--epoch", "9"])
    assert result.exit_code == 4 and "available epochs: 1, 2, 3" in result.output
    assert not (run / "generated").exists()  # nothing written by any of these
