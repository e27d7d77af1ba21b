"""Reading the preflight probe's answer, and each real trainer message's fix in bespoke's terms."""

from __future__ import annotations

import json

from bespoke.kohya.preflight import FAIL, HARDWARE, MARKER, PASS, SKIPPED, fix_for, parse_probe, probe_device


def test_a_probe_answer_becomes_stages_with_fixes_and_problems():
    answer = {"probe": 1, "device": {"cuda": False}, "jobs": [{"id": "/r/a", "stages": [
        {"name": "arguments", "status": PASS, "message": "ok"},
        {"name": "buckets", "status": FAIL, "message": "AssertionError: bucket_reso_steps is 16. it must be "
                                                       "divisible by 64."},
        {"name": "data loader", "status": SKIPPED, "message": "needs the dataset stage"},
        {"name": "mixed precision", "status": HARDWARE, "message": "fp16 mixed precision requires a GPU (not 'cpu')"},
    ]}]}
    stdout = "noise from sd-scripts\n" + MARKER + " " + json.dumps(answer) + "\n"
    (run,) = parse_probe(stdout, "", 0, ["/r/a"])
    assert not run.ok and [s.name for s in run.problems] == ["buckets", "mixed precision"]
    assert "--set bucket_reso_steps=64" in run.stages[1].fix
    assert run.stages[0].fix == "" and run.stages[2].fix == ""
    assert "mixed_precision='\"no\"'" in run.stages[3].fix
    assert probe_device(stdout) == {"cuda": False}


def test_a_crashed_or_broken_probe_is_one_clean_error_per_run():
    runs = parse_probe("", "Traceback ...\nSegmentation fault", -11, ["/r/a", "/r/b"])
    assert [r.error for r in runs] == ["the preflight probe crashed: Segmentation fault"] * 2
    answer = {"probe": 1, "error": "cannot import sd-scripts from /sd: ModuleNotFoundError: No module named 'torch'"}
    (run,) = parse_probe(f"{MARKER} {json.dumps(answer)}\n", "", 0, ["/r/a"])
    assert not run.ok and "No module named 'torch'" in run.error


def test_the_real_trainers_messages_map_to_fixes():
    cases = {
        ("dataset", "MultipleInvalid: extra keys not allowed @ data['datasets'][0]['subsets'][0]['batch_size']"):
            "remove batch_size there",
        ("dataset", "AssertionError: min_bucket_reso must be equal or less than resolution"): "--set min_bucket_reso",
        ("data loader", "ValueError: persistent_workers option needs num_workers > 0"):
            "--set persistent_data_loader_workers=false",
        ("attention", "ImportError: No xformers / xformersがインストールされていないようです"): "--set xformers=false",
        ("optimizer", "ImportError: No bitsandbytes / bitsandbytesがインストールされていないようです"):
            "optimizer_type='\"AdamW\"'",
        ("tokenizer", "TypeError: expected str, bytes or os.PathLike object, not NoneType"): "tokenizer_cache_dir",
    }
    for (stage, message), needle in cases.items():
        assert needle in fix_for(stage, FAIL, message), (stage, message)
    assert fix_for("buckets", PASS, "bucket_reso_steps is 16") == ""
