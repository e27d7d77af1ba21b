"""Stand-in for sd-scripts `library/train_util.py`: exactly the functions bespoke's preflight probe calls."""

from __future__ import annotations

import os
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
