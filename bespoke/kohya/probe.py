"""The preflight probe: run by bespoke as a script in the TRAINER's Python (never imported by bespoke).

`python probe.py SD_SCRIPTS JOBS_JSON` where JOBS_JSON is a list of {"id", "cwd", "args"}: for each job it
changes to `cwd` (the run folder, like the trainer) and runs the installed sd-scripts' own code on
`train_network.py args` up to, not including, the model load. The stages follow train_network.py's order.
Heavy imports happen once; each job runs in a forked child (sd-scripts keeps global state, and a crash in
one job must not take the others down). The last stdout line is `MARKER {json}`:
{"probe": 1, "device": {...}, "jobs": [{"id", "stages": [{"name", "status", "message"}]}]}
with status PASS | FAIL | NEEDS-HARDWARE | SKIPPED (an earlier stage it depends on failed).

The same check runs inside a launch through gate.py beside this file (bespoke.kohya.preflight.gate_words).

CUDA is touched only in the forked children: a parent that initialised CUDA could not give it to a child
(torch: "Cannot re-initialize CUDA in forked subprocess"), nor could it then be the trainer cleanly.

Everything from sd-scripts is reached through its modules (even torch, as `library.train_util.torch`), so
that a stand-in checkout without torch (bespoke's test fake) can answer the same calls.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import os
import sys
import traceback

MARKER = "BESPOKE_PREFLIGHT"
PASS, FAIL, HARDWARE, SKIPPED = "PASS", "FAIL", "NEEDS-HARDWARE", "SKIPPED"
DUMMY_SIZE = 4096  # bitsandbytes keeps 8-bit state only for tensors of >= 4096 elements


class Stop(Exception):
    """A stage's verdict other than PASS: raised with (status, message)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _error(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"the trainer exited with code {exc.code} (see its messages above)"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _sibling(name: str):
    """A script of this folder loaded by its path (this folder is never put on the trainer's sys.path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"bespoke_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


envprobe = _sibling("envprobe")  # the one reading of the device: bespoke's environment probe's (envprobe.device)


def _stopping(parser):
    """`parser` with argparse's exit turned into a FAIL carrying argparse's own message (not a bare SystemExit)."""

    def exit_with(status=0, message=None):
        raise Stop(FAIL, (message or f"argparse exit {status}").strip())

    parser.exit = exit_with
    return parser


def stage_arguments(job, ctx):
    train_network, train_util = ctx["train_network"], ctx["train_util"]
    parser = _stopping(train_network.setup_parser())
    sys.argv = ["train_network.py", *job["args"]]  # read_config_from_file parses sys.argv again
    args = parser.parse_args(job["args"])
    args = train_util.read_config_from_file(args, parser)
    train_util.verify_training_args(args)
    train_util.prepare_dataset_args(args, True)
    ctx["args"] = args
    ctx["trainer"] = train_network.NetworkTrainer()
    return f"{len(vars(args))} arguments parsed and verified"


def stage_tokenizer(job, ctx):
    args = ctx["args"]
    ctx["trainer"].get_tokenize_strategy(args)
    where = args.tokenizer_cache_dir or os.environ.get("HF_HOME") or "the default Hugging Face cache"
    return f"CLIP tokenizer loaded (from {where})"


def stage_dataset(job, ctx):
    args, config_util = ctx["args"], ctx["config_util"]
    sanitizer = config_util.ConfigSanitizer(True, True, getattr(args, "masked_loss", False), True)
    user_config = config_util.load_user_config(args.dataset_config)
    blueprint = config_util.BlueprintGenerator(sanitizer).generate(user_config, args)
    train_group, val_group = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
    if len(train_group) == 0:
        raise Stop(FAIL, "No data found. Please verify arguments (the trainer would log this and exit 0 "
                         "without training)")
    if args.cache_latents and not train_group.is_latent_cacheable():
        raise Stop(FAIL, "when caching latents, either color_aug or random_crop cannot be used")
    ctx["train_group"], ctx["val_group"] = train_group, val_group
    images = sum(getattr(d, "num_train_images", 0) for d in getattr(train_group, "datasets", []))
    return f"{images} images x repeats, {len(train_group)} batches per epoch"


def stage_buckets(job, ctx):
    ctx["trainer"].assert_extra_args(ctx["args"], ctx["train_group"], ctx["val_group"])
    return "bucket settings accepted (NetworkTrainer.assert_extra_args)"


def stage_loader(job, ctx):
    args, torch = ctx["args"], ctx["torch"]
    workers = min(args.max_data_loader_n_workers, os.cpu_count() or 1)
    torch.utils.data.DataLoader(ctx["train_group"], batch_size=1, shuffle=True, num_workers=workers,
                                persistent_workers=args.persistent_data_loader_workers)
    return f"{workers} worker(s), persistent={bool(args.persistent_data_loader_workers)}"


def stage_optimizer(job, ctx):
    args, torch, train_util = ctx["args"], ctx["torch"], ctx["train_util"]
    if "train_group" in ctx and args.max_train_epochs:
        batches = math.ceil(len(ctx["train_group"]) / max(int(args.gradient_accumulation_steps or 1), 1))
        args.max_train_steps = args.max_train_epochs * batches
    device = "cuda" if ctx["device"]["cuda"] else "cpu"
    param = torch.nn.Parameter(torch.zeros(DUMMY_SIZE, device=device))
    params = [{"params": [param], "lr": args.unet_lr or args.learning_rate}]
    try:
        name, _, optimizer = train_util.get_optimizer(args, params)
        scheduler = train_util.get_scheduler_fix(args, optimizer, 1)
        param.grad = torch.ones_like(param)
        optimizer.step()
        scheduler.step()
    except Exception as exc:
        if not ctx["device"]["cuda"] and "8bit" in str(args.optimizer_type).lower():
            raise Stop(HARDWARE, f"{_error(exc)} (8-bit optimizers need a CUDA GPU)") from exc
        raise
    return f"{name}, scheduler {args.lr_scheduler}, {args.max_train_steps} steps: one step on a dummy parameter"


class _DummyUnet:
    """What train_util.replace_unet_modules calls on the U-Net, without a U-Net."""

    def set_use_memory_efficient_attention(self, xformers, mem_eff):
        pass

    def set_use_sdpa(self, sdpa):
        pass


def stage_attention(job, ctx):
    args, torch, cuda = ctx["args"], ctx["torch"], ctx["device"]["cuda"]
    try:
        ctx["train_util"].replace_unet_modules(_DummyUnet(), args.mem_eff_attn, args.xformers, args.sdpa)
    except ImportError as exc:
        raise Stop(FAIL if cuda else HARDWARE, _error(exc) + ("" if cuda else " (and xformers needs a CUDA GPU)")) \
            from exc
    if args.xformers and not cuda:
        raise Stop(HARDWARE, "xformers imports, but its kernels need a CUDA GPU and this box has none")
    if args.sdpa and not args.xformers and not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        raise Stop(FAIL, f"torch {torch.__version__} has no scaled_dot_product_attention (sdpa needs torch >= 2)")
    return "xformers" if args.xformers else "sdpa" if args.sdpa else "mem_eff_attn" if args.mem_eff_attn else \
        "default attention"


def stage_precision(job, ctx):
    args, device = ctx["args"], ctx["device"]
    mode = args.mixed_precision
    if mode not in ("no", "fp16", "bf16", "fp8"):
        raise Stop(FAIL, f"ValueError: Unknown mixed_precision mode: {mode}. Choose between "
                         "['no', 'fp8', 'fp16', 'bf16']")
    ctx["train_util"].prepare_dtype(args)
    if mode == "no":
        return f"no mixed precision (save_precision {args.save_precision})"
    if not device["cuda"]:
        raise Stop(HARDWARE, f"{mode} mixed precision requires a GPU (not 'cpu')")
    if mode == "bf16" and not device["bf16"]:
        raise Stop(HARDWARE, "bf16 mixed precision: this GPU does not support bfloat16")
    return f"{mode} on {device.get('gpu', 'the GPU')}"


def _sampling_on(args) -> bool:
    return bool(args.sample_at_first or (args.sample_every_n_epochs or 0) > 0 or (args.sample_every_n_steps or 0) > 0)


def stage_prompts(job, ctx):
    args, train_util = ctx["args"], ctx["train_util"]
    path = args.sample_prompts
    if not _sampling_on(args):
        return "sampling is off"
    if not path:
        raise Stop(FAIL, "sampling is on but sample_prompts is not set (TypeError at the first sample)")
    if not os.path.isfile(path):
        raise Stop(FAIL, f"No prompt file / {path} does not exist (the trainer would skip every sample)")
    if path.endswith(".txt"):
        with open(path, encoding="utf-8") as handle:
            lines = [line.strip() for line in handle.readlines()]
        prompts = [train_util.line_to_prompt_dict(line) for line in lines if line and line[0] != "#"]
    elif path.endswith(".toml"):
        data = importlib.import_module("toml").load(path)
        prompts = [dict(**data["prompt"], **subset) for subset in data["prompt"]["subset"]]
    elif path.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            prompts = json.load(handle)
    else:
        raise Stop(FAIL, f"UnboundLocalError: {path}: a prompt file must end in .txt, .toml or .json")
    if not prompts:
        raise Stop(FAIL, f"{path} holds no prompt")
    return f"{len(prompts)} prompt(s) parsed from {path}"


def stage_network(job, ctx):
    args = ctx["args"]
    module = importlib.import_module(args.network_module)
    if not hasattr(module, "create_network"):
        raise Stop(FAIL, f"{args.network_module} has no create_network()")
    if args.network_weights and not os.path.isfile(args.network_weights):
        raise Stop(FAIL, f"network_weights {args.network_weights} does not exist")
    return f"{args.network_module} imported"


def stage_gen_arguments(job, ctx):
    """gen_img.py's own parser on the exact arguments bespoke passes (an option it lacks: argparse error)."""
    parser = _stopping(importlib.import_module("gen_img").setup_parser())
    args = parser.parse_args(job["args"])
    for name in ("max_token_length", "mem_eff_attn"):
        setattr(args, name, getattr(args, name, None))
    args.mixed_precision = "fp16" if args.fp16 else "bf16" if args.bf16 else "no"
    args.save_precision = None
    ctx["args"] = args
    ctx["trainer"] = ctx["train_network"].NetworkTrainer()
    return f"gen_img.py accepts all {len(job['args'])} arguments"


def stage_gen_files(job, ctx):
    args = ctx["args"]
    missing = [w for w in (args.network_weights or []) if not os.path.isfile(w)]
    if args.ckpt and args.ckpt.endswith((".safetensors", ".ckpt")) and not os.path.isfile(args.ckpt):
        missing.insert(0, args.ckpt)
    if missing:
        raise Stop(FAIL, f"not found: {', '.join(missing)}")
    return f"base model and {len(args.network_weights or [])} LoRA file(s) exist"


# (name, function, stages it needs to have passed)
STAGES = (
    ("arguments", stage_arguments, ()),
    ("tokenizer", stage_tokenizer, ("arguments",)),
    ("dataset", stage_dataset, ("arguments",)),
    ("buckets", stage_buckets, ("dataset",)),
    ("data loader", stage_loader, ("dataset",)),
    ("optimizer", stage_optimizer, ("arguments",)),
    ("attention", stage_attention, ("arguments",)),
    ("mixed precision", stage_precision, ("arguments",)),
    ("sample prompts", stage_prompts, ("arguments",)),
    ("network module", stage_network, ("arguments",)),
)


GEN_STAGES = (
    ("gen_img arguments", stage_gen_arguments, ()),
    ("files", stage_gen_files, ("gen_img arguments",)),
    ("tokenizer", stage_tokenizer, ("gen_img arguments",)),
    ("attention", stage_attention, ("gen_img arguments",)),
    ("mixed precision", stage_precision, ("gen_img arguments",)),
)


def run_job(job: dict, modules: dict, device: dict) -> list[dict]:
    """Every stage of one job, in the job's folder; a stage whose prerequisite failed is SKIPPED."""
    os.chdir(job["cwd"])
    ctx = dict(modules, device=device)
    results: list[dict] = []
    passed: set[str] = set()
    for name, function, needs in GEN_STAGES if job.get("kind") == "gen" else STAGES:
        missing = [n for n in needs if n not in passed]
        if missing:
            results.append({"name": name, "status": SKIPPED, "message": f"needs the {missing[0]} stage"})
            continue
        try:
            results.append({"name": name, "status": PASS, "message": function(job, ctx)})
            passed.add(name)
        except Stop as stop:
            results.append({"name": name, "status": stop.status, "message": str(stop)})
        except (Exception, SystemExit) as exc:  # the trainer's own error: its message is the point
            results.append({"name": name, "status": FAIL, "message": _error(exc),
                            "trace": traceback.format_exc(limit=-3)})
    return results


def _checked(job: dict, modules: dict) -> dict:
    """This box's device and every stage of `job`: {"device", "stages"}."""
    device = envprobe.device(modules["torch"])
    return {"device": device, "stages": run_job(job, modules, device)}


def check_in_child(job: dict, modules: dict) -> dict:
    """_checked in a forked child when the OS can fork, so jobs share the imports but no state (nor CUDA)."""
    if not hasattr(os, "fork"):
        return _checked(job, modules)
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_end)
        try:
            payload = json.dumps(_checked(job, modules)).encode()
        except BaseException as exc:  # noqa: B036 - nothing may escape the child
            payload = json.dumps({"stages": [{"name": "probe", "status": FAIL, "message": _error(exc)}]}).encode()
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as incoming:
        data = incoming.read()
    _, status = os.waitpid(pid, 0)
    if not data:
        return {"stages": [{"name": "probe", "status": FAIL, "message": f"the probe process died (wait status "
                                                                         f"{status})"}]}
    return json.loads(data)


def load_modules(sd_scripts: str) -> dict:
    """sd-scripts' modules, imported the way train_network.py imports them (from the checkout's root)."""
    sys.path.insert(0, sd_scripts)
    os.chdir(sd_scripts)
    train_network = importlib.import_module("train_network")
    train_util = importlib.import_module("library.train_util")
    config_util = importlib.import_module("library.config_util")
    return {"train_network": train_network, "train_util": train_util, "config_util": config_util,
            "torch": train_util.torch}


def import_or_error(sd_scripts: str, out: dict) -> dict | None:
    """load_modules, or None with out["error"] set."""
    try:
        return load_modules(sd_scripts)
    except (Exception, SystemExit) as exc:
        out["error"] = f"cannot import sd-scripts from {sd_scripts}: {_error(exc)}"
        out["trace"] = traceback.format_exc(limit=-4)
        return None


def main(argv: list[str]) -> int:
    sd_scripts, jobs = argv[1], json.loads(argv[2])
    out: dict = {"probe": 1, "python": sys.version.split()[0], "device": {}}
    modules = import_or_error(sd_scripts, out)
    if modules is not None:
        out["jobs"] = []
        for job in jobs:
            checked = check_in_child(job, modules)
            out["device"] = out["device"] or checked.get("device") or {}
            out["jobs"].append({"id": job["id"], "stages": checked["stages"]})
    sys.stdout.flush()
    sys.stdout.write(f"\n{MARKER} {json.dumps(out)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
