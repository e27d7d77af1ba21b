"""Pure launch construction: explicit accelerate flags, GPU pinning, resume args, what gets recorded."""

from __future__ import annotations

import shlex
from pathlib import Path

from bespoke.kohya.launch import (
    LaunchSpec,
    build_launch,
    format_command,
    pin_to_gpu,
    recordable_env,
    train_script_args,
    with_resume,
)


def spec(**changes) -> LaunchSpec:
    base = dict(python="/venv/bin/python", script=Path("/sd/train_network.py"),
                script_args=train_script_args(Path("/run/config/training.toml"), Path("/run/config/dataset.toml")),
                mixed_precision="bf16", num_cpu_threads_per_process=4)
    base.update(changes)
    return LaunchSpec(**base)


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_every_accelerate_value_is_explicit_and_the_script_comes_last():
    argv, env, overrides, removed = build_launch(spec(), {"PATH": "/bin", "HOME": "/root"})
    assert argv[:3] == ["/venv/bin/python", "-m", "accelerate.commands.launch"]
    assert (flag(argv, "--num_processes"), flag(argv, "--num_machines"), flag(argv, "--mixed_precision"),
            flag(argv, "--dynamo_backend"), flag(argv, "--num_cpu_threads_per_process")) == ("1", "1", "bf16", "no", "4")
    assert "--multi_gpu" not in argv and "--gpu_ids" not in argv
    assert argv[-5:] == ["/sd/train_network.py", "--config_file", "/run/config/training.toml",
                         "--dataset_config", "/run/config/dataset.toml"]
    assert overrides == {"PYTHONUNBUFFERED": "1"}
    assert env == {"PATH": "/bin", "HOME": "/root", "PYTHONUNBUFFERED": "1"} and removed == {}


def test_several_gpus_in_one_run_use_multi_gpu_and_gpu_ids():
    argv, env, overrides, _ = build_launch(spec(gpu_ids=("0", "1")), {})
    assert "--multi_gpu" in argv
    assert flag(argv, "--num_processes") == "2" and flag(argv, "--gpu_ids") == "0,1"
    assert overrides["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_sweep_child_pinned_to_one_gpu_has_no_gpu_ids_and_one_process():
    children = [build_launch(pin_to_gpu(spec(gpu_ids=("0", "1"), num_processes=2), gpu), {"PATH": "/bin"})
                for gpu in ("0", "3")]
    for (argv, env, overrides, _), gpu in zip(children, ("0", "3"), strict=True):
        assert "--gpu_ids" not in argv and "--multi_gpu" not in argv
        assert flag(argv, "--num_processes") == "1"
        assert env["CUDA_VISIBLE_DEVICES"] == gpu and overrides["CUDA_VISIBLE_DEVICES"] == gpu
    assert children[0][0] == children[1][0]  # same argv, only the environment differs


def test_multi_node_flags_pass_through_before_the_script():
    extra = ("--machine_rank", "1", "--main_process_ip", "10.0.0.2", "--main_process_port", "29500")
    argv, _, _, _ = build_launch(spec(num_machines=2, extra_accelerate_args=extra), {})
    assert flag(argv, "--num_machines") == "2"
    assert argv.index("--main_process_ip") < argv.index("/sd/train_network.py")
    assert flag(argv, "--main_process_ip") == "10.0.0.2"


def test_resume_goes_after_the_config_files_so_the_cli_wins():
    argv, _, _, _ = build_launch(with_resume(spec(), Path("/run/model/x-000002-state")), {})
    assert argv[-2:] == ["--resume", "/run/model/x-000002-state"]
    assert argv.index("--dataset_config") < argv.index("--resume")


def test_only_bespokes_overrides_are_recorded_and_never_secrets():
    argv, env, overrides, _ = build_launch(spec(env_overrides=(("HF_TOKEN", "hf_abc"), ("TQDM_MININTERVAL", "1"))),
                                           {"AWS_SECRET_ACCESS_KEY": "zzz", "PATH": "/bin"})
    assert "AWS_SECRET_ACCESS_KEY" not in overrides and env["AWS_SECRET_ACCESS_KEY"] == "zzz"
    recorded = recordable_env(overrides)
    assert recorded == {"PYTHONUNBUFFERED": "1", "TQDM_MININTERVAL": "1"}


def test_format_command_is_rerunnable_by_a_shell():
    argv, _, overrides, _ = build_launch(spec(script=Path("/my sd/train_network.py")), {})
    line = format_command(argv, overrides)
    assert line.startswith("PYTHONUNBUFFERED=1 ")
    assert shlex.split(line)[1:] == argv
