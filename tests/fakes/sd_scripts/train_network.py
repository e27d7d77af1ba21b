"""A stand-in for kohya-ss sd-scripts `train_network.py` (SD 1.5 LoRA), for tests. No torch: fast.

It behaves like the real script for everything bespoke relies on (../shared/kohya/FACTS.md):
- `setup_parser()` exposes the real option names (fake_options.json, copied from the real parser);
- `--config_file` is read the sd-scripts way: `.toml` appended when missing, sections flattened, the CLI
  wins over the file, unknown keys accepted silently, a missing file logs "... not found." and exits 1;
- the dataset TOML is loaded, every subset's `image_dir` checked: no images -> "No data found" on
  stderr and exit 0 with no output at all;
- prints the `running training` block and `epoch k/n` on stdout, a tqdm-like `steps:` bar with `\\r`
  and `avr_loss` on stderr, `saving checkpoint: ...` per save;
- saves and draws through the real names, in the real order (bespoke's gate wraps them): the network from
  `importlib.import_module(network_module).create_network(...)` and its `save_weights` (networks/lora.py),
  `train_util.save_and_remove_state_on_epoch_end` / `save_state_on_train_end` (an accelerator whose
  `save_state` writes train_state.json first and random_states_0.pkl last) and `train_util.sample_images`
  after every step and at every epoch end (it draws only at the sample points, one `sample_image_inference`
  per prompt);
- writes `{name}-{epoch:06d}.safetensors` for every saved epoch but the last and `{name}.safetensors`
  for the last (real safetensors with ss_* metadata), `sample/{name}_e{epoch:06d}_{i:02d}_{ts}[_{seed}].png`
  per prompt (e000000 with sample_at_first), `{name}-{epoch:06d}-state` dirs with train_state.json
  when save_state, and continues after the epoch of `--resume DIR`.

With a dataset that holds images out (`validation_split` per dataset: 1.0 holds out all of that dataset's, a
share splits it with `validation_seed` as train_util.split_train_val does) it validates after every epoch
(`validate_every_n_epochs`) and, with `logging_dir`, writes `loss/epoch_average`,
`loss/validation/epoch_average` and `loss/validation/epoch_divergence` to a TensorBoard event file
(fake_tensorboard) at step = the epoch, before the epoch's checkpoint, as the real one does.

Knobs (environment): FAKE_TRAINER_VAL_LOWEST_AT=E (the validation loss falls until epoch E, then rises;
default: it falls all along), FAKE_TRAINER_SAMPLES_BEST_AT=E (the samples are new punks on a 24-cell grid,
cleanest at epoch E and more damaged cell by cell away from it; default: blurry training images, sharpening all
along; library/train_util.py), FAKE_TRAINER_OPTIMUM='{"learning_rate": 1e-4, "network_dim": 16}' (the same
samples, whose peak is earlier and more damaged the further the run's options are from these: a simulated
objective with a known optimum),
FAKE_TRAINER_FAIL_AT_STEP=N (traceback, exit 1), FAKE_TRAINER_HANG_AT_STEP=N (sleeps),
FAKE_TRAINER_STEP_SECONDS=float (default 0.02), FAKE_TRAINER_FAIL_RESOLUTION=R (fail at step 1 when the
dataset resolution is R), FAKE_TRAINER_RECORD=path (append a JSON line of what it saw: argv, accelerate env),
FAKE_TRAINER_DROP_OPTIONS=a,b (pretend to be an older sd-scripts without these options),
FAKE_TRAINER_HANG_IN=startup (print `fake trainer: hanging in startup` and sleep before the training block),
FAKE_TRAINER_SLOW_IN=save|state|sample with FAKE_TRAINER_SLOW_SECONDS (default 3): epoch 1's checkpoint
half-written, its state after train_state.json, or its sampling after the first image pauses and prints
`fake trainer: slow in <where>` (library/train_util.py, networks/lora.py; for fault-injection tests).
Like the real one (train_network.py l.1232-1344), a resumed run counts its global step from 0 again, so the
`ss_steps` of checkpoints written after `--resume` are short by the steps done before, and so is the
`current_step` of the states it writes — and a resume starts at `current_step // steps per epoch` (unless
`--initial_epoch`): a state written by a resumed run sends a plain `--resume` back to epochs already trained.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path

import library.train_util as train_util
from library.network_trainer import NetworkTrainer  # noqa: F401 - train_network.NetworkTrainer, for preflight

HERE = Path(__file__).resolve().parent
_FALLBACK_OPTIONS = [  # used only when no option table is found
    ("pretrained_model_name_or_path", "str"), ("output_dir", "str"), ("output_name", "str"),
    ("max_train_epochs", "int"), ("max_train_steps", "int"), ("save_every_n_epochs", "int"),
    ("sample_prompts", "str"), ("sample_every_n_epochs", "int"), ("sample_at_first", None),
    ("save_state", None), ("resume", "str"), ("network_dim", "int"), ("network_alpha", "float"),
    ("learning_rate", "float"), ("mixed_precision", "str"), ("train_batch_size", "int"),
]


def _int_or_float(value):
    number = float(value)
    return int(number) if number.is_integer() and "." not in str(value) else number


_TYPES = {"str": str, "int": int, "float": float, "int_or_float": _int_or_float, "Path": str, None: None}


def _option_table() -> list[dict]:
    for path in (HERE / "fake_options.json", HERE.parents[2] / "bespoke" / "data" / "train_network_options.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rows = data.get("options") or data.get("arguments") if isinstance(data, dict) else data
        if isinstance(rows, list) and rows and isinstance(rows[0], dict) and "dest" in rows[0]:
            return rows
    return [{"dest": d, "option_strings": [f"--{d}"], "store_true": t is None, "type": t, "default": None,
             "choices": None, "nargs": None} for d, t in _FALLBACK_OPTIONS]


def setup_parser() -> argparse.ArgumentParser:
    """The argument parser, with the option names of the real train_network.py."""
    parser = argparse.ArgumentParser()
    dropped = {d for d in os.environ.get("FAKE_TRAINER_DROP_OPTIONS", "").split(",") if d}
    for row in _option_table():
        if row["dest"] in dropped:
            continue
        if row.get("store_true"):
            parser.add_argument(*row["option_strings"], dest=row["dest"], action="store_true")
            continue
        kwargs = {"dest": row["dest"], "default": row.get("default"), "type": _TYPES.get(row.get("type"), str)}
        if row.get("choices"):
            kwargs["choices"] = row["choices"]
        if row.get("nargs") == "*":
            kwargs["nargs"] = "*"
        parser.add_argument(*row["option_strings"], **kwargs)
    for name in ("config_file", "dataset_config", "resume"):  # bespoke relies on these three
        if f"--{name}" not in parser._option_string_actions:
            parser.add_argument(f"--{name}", default=None)
    return parser


def read_config_from_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """sd-scripts `train_util.read_config_from_file`: flatten one level, CLI overrides the file, no checks."""
    import toml

    if not args.config_file:
        return args
    config_path = args.config_file if args.config_file.endswith(".toml") else args.config_file + ".toml"
    if not os.path.exists(config_path):
        print(f"INFO     {config_path} not found.", file=sys.stderr)
        sys.exit(1)
    print(f"Loading settings from {config_path}...", file=sys.stderr)
    with open(config_path, encoding="utf-8") as handle:
        config = toml.load(handle)
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    args = parser.parse_args(namespace=argparse.Namespace(**flat))
    args.config_file = os.path.splitext(args.config_file)[0]
    return args


def _warn_missing_captions(images: list[Path], extension: str) -> None:
    """Like DreamBoothDataset: a missing caption file is only a warning; the image trains with no caption."""
    missing = [p for p in images if not p.with_suffix(extension).is_file()]
    if missing:
        print(f"WARNING  No caption file found for {len(missing)} images. Training will continue without captions "
              f"for these images. If class token exists, it will be used.", file=sys.stderr)
        for path in missing[:5]:
            print(f"WARNING  {path}", file=sys.stderr)


def _hang_in(where: str) -> None:
    if os.environ.get("FAKE_TRAINER_HANG_IN") == where:
        print(f"fake trainer: hanging in {where}", flush=True)
        while True:
            time.sleep(1)


def _metadata(args, epoch: int, step: int, datasets: list[dict], num_epochs: int, started: float) -> dict:
    now = datetime.datetime.now()
    lr = str(args.learning_rate)
    te_lr = args.text_encoder_lr
    if isinstance(te_lr, list):
        te_lr = te_lr[0] if len(te_lr) == 1 else te_lr
    meta = {
        "ss_session_id": str(uuid.uuid4().int % 10**10),
        "ss_training_started_at": str(started),
        "ss_output_name": str(args.output_name),
        "ss_learning_rate": lr,
        "ss_text_encoder_lr": str(te_lr),
        "ss_unet_lr": str(args.unet_lr),
        "ss_num_epochs": str(num_epochs),
        "ss_epoch": str(epoch),
        "ss_steps": str(step),
        "ss_network_module": str(args.network_module),
        "ss_network_dim": str(args.network_dim),
        "ss_network_alpha": str(args.network_alpha),
        "ss_lr_scheduler": str(args.lr_scheduler),
        "ss_lr_warmup_steps": str(args.lr_warmup_steps),
        "ss_optimizer": str(args.optimizer_type or "torch.optim.adamw.AdamW"),
        "ss_mixed_precision": str(args.mixed_precision),
        "ss_seed": str(args.seed),
        "ss_max_train_steps": str(args.max_train_steps),
        "ss_sd_model_name": os.path.basename(str(args.pretrained_model_name_or_path)),
        "ss_base_model_version": "sd_v1",
        "ss_v2": "False",
        "ss_datasets": json.dumps(datasets),
        "ss_tag_frequency": json.dumps({d["subsets"][0]["image_dir"]: {} for d in datasets if d["subsets"]}),
        "ss_sd_scripts_commit_hash": "(fake)",
        "ss_training_finished_at": str(time.time()),
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-v1/lora",
        "modelspec.implementation": "diffusers",
        "modelspec.title": str(args.output_name),
        "modelspec.resolution": str(args.resolution or "512").replace(",", "x"),
        "modelspec.date": now.strftime("%Y-%m-%dT%H:%M:%S"),
        "modelspec.prediction_type": "epsilon",
    }
    return meta


class _Accelerator:
    """What the fake uses of accelerate's Accelerator: save_state in the real order — sd-scripts' save hook writes
    train_state.json first, then accelerate the weights, optimizer, scheduler and, last, the RNG states."""

    def __init__(self, images: list[Path], learned: int):
        self.fake_images = images
        self.epoch = self.step = 0
        self.learned = learned  # the epochs the weights hold (what samples are drawn with; a resume loads them)

    def save_state(self, folder: str) -> None:
        import library.train_util as train_util

        os.makedirs(folder, exist_ok=True)
        print(f"INFO     save train state to {folder}/train_state.json at epoch {self.epoch} step {self.step}",
              file=sys.stderr)
        with open(os.path.join(folder, "train_state.json"), "w", encoding="utf-8") as handle:
            json.dump({"current_epoch": self.epoch, "current_step": self.step}, handle)
        train_util.slow_in("state", self.epoch)
        for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl"):
            (Path(folder) / name).write_bytes(b"fake " + name.encode())


def _save_model(network, path: Path, metadata: dict) -> None:
    """train_network.py's save_model closure: the line, then network.save_weights (which the gate guards)."""
    print(f"\nsaving checkpoint: {path}", flush=True)
    network.save_weights(str(path), None, metadata)


def _tqdm(step: int, total: int, started: float, loss: float) -> str:
    elapsed = time.time() - started
    rate = step / elapsed if elapsed > 0 and step else 0.0
    remaining = (total - step) / rate if rate else 0.0
    pct = int(100 * step / total) if total else 100
    bar = ("█" * (pct // 10)).ljust(10)

    def fmt(seconds: float) -> str:
        return f"{int(seconds) // 60:02d}:{int(seconds) % 60:02d}"

    rate_text = f"{rate:5.2f}it/s" if rate else "?it/s"
    return f"\rsteps: {pct:3d}%|{bar}| {step}/{total} [{fmt(elapsed)}<{fmt(remaining)}, {rate_text}, avr_loss={loss:.4g}]"


def train(args: argparse.Namespace) -> int:
    """The fake training loop; returns the process exit code."""

    record = os.environ.get("FAKE_TRAINER_RECORD")
    if record:
        seen = {"argv": sys.argv[1:], "env": {k: v for k, v in os.environ.items()
                                            if k.startswith("ACCELERATE_") or k in ("CUDA_VISIBLE_DEVICES",
                                                                                    "PYTHONUNBUFFERED")},
                "mixed_precision": args.mixed_precision, "resume": args.resume, "pid": os.getpid(),
                "cwd": os.getcwd()}
        with open(record, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(seen) + "\n")

    import fake_rules

    dataset_config = _load_dataset_config(args.dataset_config)
    images: list[Path] = []
    datasets_meta = []
    num_images_repeats = num_validation_repeats = 0
    batch_size = int(args.train_batch_size or 1)
    resolution = None
    for values, subsets in fake_rules.resolved_datasets(dataset_config, vars(args)):
        metas = []
        for subset in subsets:
            found, held = fake_rules.split_images(fake_rules.images_of(subset.get("image_dir")), values,
                                                  args.seed)
            repeats = int(subset["num_repeats"])
            num_validation_repeats += len(held) * repeats
            if not found:
                continue
            batch_size, resolution = int(values["batch_size"]), list(values["resolution"])
            _warn_missing_captions(found, subset["caption_extension"])
            images += found
            num_images_repeats += len(found) * repeats
            metas.append({"img_count": len(found), "num_repeats": repeats,
                          "image_dir": os.path.basename(str(subset.get("image_dir", "")))})
        if metas:
            datasets_meta.append({"is_dreambooth": True, "batch_size_per_device": batch_size,
                                  "resolution": resolution, "subsets": metas})
    if not images:  # checked_launch stops first; kept for callers of train() alone
        print("ERROR    No data found. Please verify arguments (train_data_dir must be the parent of folders "
              "with images) / 画像がありません。", file=sys.stderr)
        return 0

    _hang_in("startup")
    steps_per_epoch = max(math.ceil(num_images_repeats / batch_size), 1)
    if args.max_train_epochs is not None:  # like train_network.py: max_train_epochs overrides max_train_steps
        num_epochs = int(args.max_train_epochs)
        print(f"override steps. steps for {num_epochs} epochs is / 指定エポックまでのステップ数: "
              f"{steps_per_epoch * num_epochs}")
    else:
        num_epochs = math.ceil(int(args.max_train_steps or 1600) / steps_per_epoch)
    args.max_train_epochs = num_epochs
    total_steps = steps_per_epoch * num_epochs
    args.max_train_steps = total_steps
    print("running training / 学習開始")
    print(f"  num train images * repeats / 学習画像の数×繰り返し回数: {num_images_repeats}")
    print(f"  num validation images * repeats / 検証画像の数×繰り返し回数: {num_validation_repeats}")
    print("  num reg images / 正則化画像の数: 0")
    print(f"  num batches per epoch / 1epochのバッチ数: {steps_per_epoch}")
    print(f"  num epochs / epoch数: {num_epochs}")
    print(f"  batch size per device / バッチサイズ: {batch_size}")
    print("  gradient accumulation steps / 勾配を合計するステップ数 = 1")
    print(f"  total optimization steps / 学習ステップ数: {total_steps}")

    first_epoch = 0
    if args.resume:  # like train_network.py l.1232-1273: from the state's STEP count, unless --initial_epoch
        state = json.loads((Path(args.resume) / "train_state.json").read_text())
        first_epoch = int(state["current_step"]) // steps_per_epoch
        print(f"resume training from state: {args.resume}, epoch {first_epoch}")
    if getattr(args, "initial_epoch", None) is not None:
        first_epoch = int(args.initial_epoch) - 1

    fail_at = int(os.environ.get("FAKE_TRAINER_FAIL_AT_STEP", "0") or 0)
    if resolution is not None and str(resolution[0]) == os.environ.get("FAKE_TRAINER_FAIL_RESOLUTION", ""):
        fail_at = 1  # the first step of this launch (the step count restarts on --resume)
    hang_at = int(os.environ.get("FAKE_TRAINER_HANG_AT_STEP", "0") or 0)
    step_seconds = float(os.environ.get("FAKE_TRAINER_STEP_SECONDS", "0.02"))
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    name = args.output_name or "last"
    started = time.time()
    validation = _Validation(args, num_validation_repeats)
    every = args.save_every_n_epochs  # as train_network.py: 0 is a ZeroDivisionError after the first epoch
    network = importlib.import_module(args.network_module or "networks.lora").create_network(
        1.0, args.network_dim, args.network_alpha, None, None, None)
    accelerator = _Accelerator(images, first_epoch)
    accelerator.epoch = network.epoch = first_epoch
    train_util.sample_images(accelerator, args, 0, 0)  # --sample_at_first, also on --resume (FACTS §10)

    step = 0  # the real trainer restarts its global step on --resume (no skip_until_initial_step logic reached)
    loss = 0.25
    sys.stderr.write(_tqdm(step, total_steps, started, loss))
    sys.stderr.flush()
    for epoch in range(first_epoch, num_epochs):
        print(f"\nepoch {epoch + 1}/{num_epochs}", flush=True)
        for _ in range(steps_per_epoch):
            step += 1
            if step == fail_at:
                raise RuntimeError(f"fake trainer failure at step {step} (FAKE_TRAINER_FAIL_AT_STEP)")
            if step == hang_at:
                while True:
                    time.sleep(1)
            time.sleep(step_seconds)
            loss = 0.2 / (1 + 0.1 * step) + 0.01
            sys.stderr.write(_tqdm(step, total_steps, started, loss))
            sys.stderr.flush()
            train_util.sample_images(accelerator, args, None, step)  # after every step, as the real loop
        done = epoch + 1
        network.epoch = accelerator.epoch = accelerator.learned = done
        accelerator.step = step
        validation.after_epoch(done, loss)
        if every is not None and done % int(every) == 0 and done < num_epochs:
            path = output_dir / f"{name}-{done:06d}.safetensors"
            _save_model(network, path, _metadata(args, done, step, datasets_meta, num_epochs, started))
            if args.save_state:
                train_util.save_and_remove_state_on_epoch_end(args, accelerator, done)
        train_util.sample_images(accelerator, args, done, step)
        sys.stdout.flush()
    sys.stderr.write("\n")
    if args.save_state or args.save_state_on_train_end:
        train_util.save_state_on_train_end(args, accelerator)
    _save_model(network, output_dir / f"{name}.safetensors",
                _metadata(args, num_epochs, step, datasets_meta, num_epochs, started))
    print("model saved.")
    return 0


class _Validation:
    """train_network.py's epoch validation and its TensorBoard logs (the real order: validation, then the epoch
    average, both before the epoch's checkpoint is saved)."""

    def __init__(self, args: argparse.Namespace, held: int):
        import fake_tensorboard

        self.held = held
        self.every = getattr(args, "validate_every_n_epochs", None)
        self.lowest_at = int(os.environ.get("FAKE_TRAINER_VAL_LOWEST_AT", "0") or 0)
        log_with = getattr(args, "log_with", None)
        logged = getattr(args, "logging_dir", None) and log_with in (None, "tensorboard", "all")
        self.writer = fake_tensorboard.EventWriter(args.logging_dir, getattr(args, "log_prefix", None)) \
            if logged else None

    def loss(self, epoch: int) -> float:
        if self.lowest_at:
            return 0.08 + 0.01 * (epoch - self.lowest_at) ** 2
        return 0.2 / (1 + 0.5 * epoch) + 0.05

    def after_epoch(self, epoch: int, train_loss: float) -> None:
        logs = {}
        if self.held and (self.every is None or epoch % int(self.every) == 0):
            value = self.loss(epoch)
            sys.stderr.write(f"\repoch validation steps: 100%|██████████| 4/4 [00:00<00:00, "
                             f"val_epoch_avg_loss={value:.3g}, timestep=800]\n")
            logs = {"loss/validation/epoch_average": value, "loss/validation/epoch_divergence": value - train_loss}
        if self.writer is not None:
            self.writer.scalars(epoch, {**logs, "loss/epoch_average": train_loss})


def _die(message: str, logged: str | None = None) -> int:
    """Fail like the real script: an optional ERROR log line, then a traceback ending in `message`, exit 1."""
    if logged:
        print(f"ERROR    {logged}", file=sys.stderr)
    print("Traceback (most recent call last):\n  File \"train_network.py\", line 1, in <module> (fake)\n"
          + message, file=sys.stderr)
    return 1


def _load_dataset_config(path) -> dict:
    """config_util.load_user_config: .toml or .json by suffix, a missing file is a ValueError."""
    import toml

    name = str(path)
    if not os.path.exists(name):
        raise ValueError(f"file not found: {name}")
    if name.lower().endswith(".json"):
        return json.loads(Path(name).read_text(encoding="utf-8"))
    if name.lower().endswith(".toml"):
        return toml.load(name)
    raise ValueError(f"not supported config file format / 対応していない設定ファイルの形式です: {name}")


def checked_launch(args: argparse.Namespace) -> int | None:
    """The real trainer's checks in its order, with its messages (fake_rules): before the dataset, the dataset
    build ("No data found" exits 0), the accelerator, the model load, then what fails after it.
    None when training may start, else the exit code."""
    import fake_rules

    options = vars(args)
    for message in fake_rules.early_training_errors(options):
        return _die(message)
    user_config = _load_dataset_config(args.dataset_config)
    for message in fake_rules.check_dataset(user_config, options):
        if message == fake_rules.NO_DATA:
            print(f"ERROR    {message}", file=sys.stderr)
            return 0
        invalid = message.startswith("voluptuous")
        schema = "Invalid user config / ユーザ設定の形式が正しくないようです"
        return _die(message, schema if invalid and "object value" not in message else
                    "Invalid cmdline parsed arguments. This should be a bug." if invalid else None)
    for message in fake_rules.accelerator_errors(options):
        return _die(message)
    print("INFO     load StableDiffusion checkpoint (fake: no model)", file=sys.stderr)
    for message in fake_rules.late_training_errors(options):
        return _die(message)
    return None


def main() -> int:
    parser = setup_parser()
    args = parser.parse_args()
    args = read_config_from_file(args, parser)
    for key in ("learning_rate", "text_encoder_lr", "unet_lr", "network_module", "network_dim", "network_alpha",
                "lr_scheduler", "lr_warmup_steps", "optimizer_type", "mixed_precision", "seed", "max_train_steps",
                "pretrained_model_name_or_path", "resolution", "train_batch_size", "save_every_n_epochs",
                "sample_every_n_epochs", "sample_every_n_steps", "sample_at_first", "sample_prompts", "save_state",
                "save_state_on_train_end", "output_name", "max_train_epochs"):
        if not hasattr(args, key):
            setattr(args, key, None)
    stopped = checked_launch(args)
    if stopped is not None:
        return stopped
    if not args.output_dir:
        raise TypeError("expected str, bytes or os.PathLike object, not NoneType (output_dir is not set)")
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
