"""Stand-in for sd-scripts `library/train_util.py`: the functions bespoke's preflight probe calls, and those the training
loop saves states and draws samples with (bespoke's gate wraps those by name)."""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace

from library._rules import missing, raise_first, training_errors

OPTIMIZERS = {"adamw": "torch.optim.adamw.AdamW", "adamw8bit": "bitsandbytes.optim.adamw.AdamW8bit",
              "pagedadamw8bit": "bitsandbytes.optim.adamw.PagedAdamW8bit", "lion": "lion_pytorch.lion_pytorch.Lion",
              "lion8bit": "bitsandbytes.optim.lion.Lion8bit", "sgdnesterov": "torch.optim.sgd.SGD",
              "prodigy": "prodigyopt.prodigy.Prodigy", "adafactor": "transformers.optimization.Adafactor",
              "dadaptation": "dadaptation.DAdaptAdam", "dadaptadam": "dadaptation.DAdaptAdam"}
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "piecewise_constant")


class _Tensor:
    def __init__(self, size: int = 1):
        self.size, self.grad = size, None


class _DataLoader:
    """torch.utils.data.DataLoader's constructor checks (the real message)."""

    def __init__(self, dataset, batch_size=1, shuffle=False, num_workers=0, persistent_workers=False, **kwargs):
        if persistent_workers and num_workers <= 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        self.dataset = dataset


class _Cuda:
    """torch.cuda as far as the probe uses it, with torch's fork rule: a process that initialised CUDA (any call
    but is_available) cannot give it to a forked child, whose first CUDA call then raises."""

    initialised_in: int | None = None

    def _lazy_init(self) -> None:
        if self.initialised_in is not None and self.initialised_in != os.getpid():
            raise RuntimeError("Cannot re-initialize CUDA in forked subprocess. To use CUDA with multiprocessing, "
                               "you must use the 'spawn' start method")
        self.initialised_in = os.getpid()

    def is_available(self) -> bool:
        return os.environ.get("FAKE_TRAINER_GPU", "bf16") != "none"

    def device_count(self) -> int:  # like torch's, it initialises nothing
        return int(self.is_available())

    def is_bf16_supported(self) -> bool:
        self._lazy_init()
        return os.environ.get("FAKE_TRAINER_GPU", "bf16") == "bf16"

    def get_device_name(self, index: int = 0) -> str:
        self._lazy_init()
        return f"fake GPU ({os.environ.get('FAKE_TRAINER_GPU', 'bf16')})"


def _zeros(size, device=None):
    if str(device or "cpu").startswith("cuda"):
        torch.cuda._lazy_init()
    return _Tensor(size)


# what the probe uses of torch, reached (as in the real checkout) as train_util.torch
torch = SimpleNamespace(
    __version__="0.0+fake", cuda=_Cuda(),
    zeros=_zeros, ones_like=lambda t: _Tensor(t.size),
    nn=SimpleNamespace(Parameter=lambda t: t, functional=SimpleNamespace(scaled_dot_product_attention=None)),
    utils=SimpleNamespace(data=SimpleNamespace(DataLoader=_DataLoader)),
)


def read_config_from_file(args, parser):
    import train_network  # the fake's one reader of --config_file

    return train_network.read_config_from_file(args, parser)


def verify_training_args(args) -> None:
    raise_first(training_errors(args))


def prepare_dataset_args(args, support_metadata: bool) -> None:
    if args.resolution is not None:  # like the real one: an int from the TOML has no .split
        args.resolution = tuple(int(r) for r in args.resolution.split(","))
        if len(args.resolution) == 1:
            args.resolution = (args.resolution[0], args.resolution[0])
        assert len(args.resolution) == 2, f"resolution must be 'size' or 'width,height': {args.resolution}"


class _Optimizer:
    def step(self) -> None:
        pass


def get_optimizer(args, trainable_params):
    name = (args.optimizer_type or "AdamW").lower()
    if ("8bit" in name or name.startswith("paged")) and missing("bitsandbytes"):
        raise ImportError("No bitsandbytes / bitsandbytesがインストールされていないようです")
    if name not in OPTIMIZERS and "." not in name:
        raise AttributeError(f"module 'torch.optim' has no attribute '{args.optimizer_type}'")
    return OPTIMIZERS.get(name, name), "", _Optimizer()


def get_scheduler_fix(args, optimizer, num_processes: int):
    name = args.lr_scheduler
    if name not in SCHEDULERS and not str(name).startswith("adafactor"):
        raise ValueError(f"'{name}' is not a valid SchedulerType")
    return _Optimizer()


def prepare_dtype(args):
    return args.mixed_precision, args.save_precision


def replace_unet_modules(unet, mem_eff_attn, xformers, sdpa) -> None:
    if mem_eff_attn:
        unet.set_use_memory_efficient_attention(False, True)
    elif xformers:
        if missing("xformers"):
            raise ImportError("No xformers / xformersがインストールされていないようです")
        unet.set_use_memory_efficient_attention(True, False)
    elif sdpa:
        unet.set_use_sdpa(True)


def line_to_prompt_dict(line: str) -> dict:
    parts = line.split(" --")
    prompt = {"prompt": parts[0]}
    for part in parts[1:]:
        key, _, value = part.strip().partition(" ")
        prompt[key.lower()] = value.strip()
    return prompt


# ---------------------------------------------------------------- what the training loop saves and draws with
# The same names and arguments as the real train_util (bespoke's gate wraps these by name: bespoke/kohya/gate.py).
# FAKE_TRAINER_SLOW_IN=state|sample (FAKE_TRAINER_SLOW_SECONDS, default 3): epoch 1's state save, or its
# sampling after the first image, pauses there and prints `fake trainer: slow in <where>` (a real save or
# sampling takes seconds; a stop that lands meanwhile must wait for it).

def slow_in(where: str, epoch) -> None:
    """The fault knob: pause in `where` during epoch 1 (the first of each)."""
    import time

    if os.environ.get("FAKE_TRAINER_SLOW_IN") == where and epoch == 1:
        print(f"fake trainer: slow in {where}", flush=True)
        time.sleep(float(os.environ.get("FAKE_TRAINER_SLOW_SECONDS", "3")))


def _remove_old_state(args, epoch_no: int) -> None:
    import shutil

    keep = args.save_last_n_epochs_state if getattr(args, "save_last_n_epochs_state", None) else \
        getattr(args, "save_last_n_epochs", None)
    if keep is not None:
        old = os.path.join(args.output_dir, f"{args.output_name or 'epoch'}-{epoch_no - args.save_every_n_epochs * keep:06d}-state")
        if os.path.exists(old):
            print(f"INFO     removing old state: {old}", file=sys.stderr)
            shutil.rmtree(old)


def save_and_remove_state_on_epoch_end(args, accelerator, epoch_no):
    print(f"INFO     saving state at epoch {epoch_no}", file=sys.stderr)
    os.makedirs(args.output_dir, exist_ok=True)
    accelerator.save_state(os.path.join(args.output_dir, f"{args.output_name or 'epoch'}-{epoch_no:06d}-state"))
    _remove_old_state(args, epoch_no)


def save_and_remove_state_stepwise(args, accelerator, step_no):
    print(f"INFO     saving state at step {step_no}", file=sys.stderr)
    accelerator.save_state(os.path.join(args.output_dir, f"{args.output_name or 'at'}-step{step_no:08d}-state"))


def save_state_on_train_end(args, accelerator):
    print("INFO     saving last state.", file=sys.stderr)
    os.makedirs(args.output_dir, exist_ok=True)
    accelerator.save_state(os.path.join(args.output_dir, f"{args.output_name or 'last'}-state"))


def read_prompts(path) -> list[dict]:
    """The .txt prompt file as sd-scripts reads it (line options --w --h --d; blank and # lines skipped)."""
    prompts = []
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
    for line in lines:
        entry = {"prompt": line.split(" --")[0], "width": 512, "height": 512, "seed": None}
        for part in line.split(" --")[1:]:
            key, _, value = part.partition(" ")
            try:
                if key.lower() in ("w", "h"):
                    entry["width" if key.lower() == "w" else "height"] = max(64, int(value) // 8 * 8)
                elif key.lower() == "d":
                    entry["seed"] = int(value)
            except ValueError:
                pass
        prompts.append(entry)
    return prompts


def sample_images(*args, **kwargs):
    return sample_images_common(None, *args, **kwargs)


def sample_images_common(pipe_class, accelerator, args, epoch, steps, *rest, **kwargs):
    """The real early returns (FACTS §3), then one sample_image_inference per prompt."""
    if steps == 0:
        if not args.sample_at_first:
            return
    else:
        if args.sample_every_n_steps is None and args.sample_every_n_epochs is None:
            return
        if args.sample_every_n_epochs is not None:
            if epoch is None or epoch % args.sample_every_n_epochs != 0:
                return
        elif steps % args.sample_every_n_steps != 0 or epoch is not None:
            return
    print(f"INFO     generating sample images at step / サンプル画像生成 ステップ: {steps}", file=sys.stderr)
    if not os.path.isfile(args.sample_prompts):  # None: the real TypeError
        print(f"ERROR    No prompt file / プロンプトファイルがありません: {args.sample_prompts}", file=sys.stderr)
        return
    save_dir = args.output_dir + "/sample"
    os.makedirs(save_dir, exist_ok=True)
    for index, prompt in enumerate(read_prompts(args.sample_prompts)):
        prompt["enum"] = index
        sample_image_inference(accelerator, args, None, save_dir, prompt, epoch, steps, None)


def _optimum_peak(args, total: int) -> tuple[int, float]:
    """FAKE_TRAINER_OPTIMUM: the samples' peak follows the settings. Its distance from the optimum (the mean over
    the given options: decades apart for numbers, 0 or 1 for anything else, each at most 1) makes the peak both
    earlier (epoch round(total * (1 - distance)), at least 1) and worse (that much damage at the peak)."""
    import json
    import math

    optimum = json.loads(os.environ["FAKE_TRAINER_OPTIMUM"])
    parts = []
    for key, wanted in optimum.items():
        value = getattr(args, key)
        if isinstance(wanted, (int, float)) and isinstance(value, (int, float)) and wanted > 0 and value > 0:
            parts.append(min(1.0, abs(math.log10(value / wanted))))
        else:
            parts.append(0.0 if str(value) == str(wanted) else 1.0)
    distance = sum(parts) / max(len(parts), 1)
    return max(1, round(total * (1 - distance))), distance


def _damaged_punk(prompt_dict: dict, away: float):
    """What a model `away` (0-1) from good draws for a prompt: a new punk (not one it trained on) with damage at
    its 24 px cells that a faithful candidate keeps, growing with `away`: the figure moved off the centre, stray
    cells of colours no neighbour has, the eyes and mouth painted over in the skin next to them, and the
    background drifting to another colour."""
    import hashlib

    import numpy as np
    from PIL import Image

    from bespoke.dataset.synthetic import make_punk

    key = f"{prompt_dict['prompt']}|{prompt_dict['seed']}".encode()
    seed = 900_000 + int(hashlib.sha256(key).hexdigest()[:8], 16) % 100_000
    cells = make_punk(seed).pixels.astype(np.int16)
    rng = np.random.default_rng(seed)
    background = cells[0, 0].copy()
    cells[(cells == background).all(axis=-1)] = np.clip(background + (rng.integers(60, 120, 3) * away).astype(
        np.int16) * rng.choice([-1, 1], 3), 0, 255)
    face = cells[9:16, 8:16].copy()  # the eyes and mouth rows: each cell painted over with the one to its left
    painted = rng.random(face.shape[:2]) < 0.8 * away
    face[:, 1:][painted[:, 1:]] = face[:, :-1][painted[:, 1:]]
    cells[9:16, 8:16] = face
    cells = np.roll(cells, (round(4 * away), round(3 * away)), axis=(0, 1))
    stray = rng.random(cells.shape[:2]) < 0.3 * away
    cells[stray] = rng.integers(0, 256, (int(stray.sum()), 3))
    return Image.fromarray(cells.astype(np.uint8), "RGB")


def sample_image_inference(accelerator, args, pipeline, save_dir, prompt_dict, epoch, steps, prompt_replacement,
                           controlnet=None):
    """One image drawn with the weights as they are (accelerator.learned epochs; a resumed run's first sample is
    drawn with the resumed epoch's, like the real one): a training image, blurred less as training goes on, or a
    new punk least damaged at FAKE_TRAINER_SAMPLES_BEST_AT (or FAKE_TRAINER_OPTIMUM's peak); seeded noise. The name carries the epoch (or step) it is drawn at."""
    import datetime

    import numpy as np
    from PIL import Image, ImageFilter

    images, total = accelerator.fake_images, max(int(args.max_train_epochs or 1), 1)
    index, done = prompt_dict["enum"], accelerator.learned
    size = (prompt_dict["width"], prompt_dict["height"])
    best_at = int(os.environ.get("FAKE_TRAINER_SAMPLES_BEST_AT", "0") or 0)
    floor = 0.0  # how damaged the best epoch is
    if os.environ.get("FAKE_TRAINER_OPTIMUM"):
        best_at, floor = _optimum_peak(args, total)
    if best_at:  # a new punk on its grid, cleanest at epoch best_at, more damaged away from it
        away = min(1.0, floor + (1 - floor) * abs(done - best_at) / best_at)
        image = _damaged_punk(prompt_dict, away).resize(size, Image.NEAREST)
        noise = 2 + 4 * away
    else:  # blurrier and noisier early in training, closer to the blocky source later
        source = Image.open(images[(index + done) % len(images)]).convert("RGB")
        blur = max(size) / 24 * (0.9 - 0.6 * min(done, total) / total)
        image = source.resize(size, Image.BILINEAR).filter(ImageFilter.GaussianBlur(radius=max(blur, 0.3)))
        noise = 10 - 6 * min(done, total) / total
    rng = np.random.default_rng((prompt_dict["seed"] or 0) * 1000 + done)
    pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, noise, (size[1], size[0], 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    ts = datetime.datetime.now().strftime("%Y%m%d%H%M%S")
    name = (f"{args.output_name}_" if args.output_name else "") + \
        (f"e{epoch:06d}" if epoch is not None else f"{steps:06d}") + f"_{index:02d}_{ts}"
    if prompt_dict["seed"] is not None:
        name += f"_{prompt_dict['seed']}"
    image.save(os.path.join(save_dir, f"{name}.png"))
    if index == 0 and epoch:
        slow_in("sample", epoch)
