"""The fake's rules (fake_rules.py, the trainer's messages) routed to the stand-in that raises them, so each
surfaces at the preflight stage where the real trainer raises it."""

from __future__ import annotations

import os

try:
    import fake_rules
except ImportError:  # before fake_rules.py exists, the stand-ins apply only their own mechanics
    fake_rules = None

# messages raised by a later stand-in, exactly where the real code raises them
_ELSEWHERE = ("it must be divisible by", "persistent_workers", "No data found", "No xformers", "bitsandbytes")


def missing(package: str) -> bool:
    """True when the fake pretends `package` is not installed (FAKE_TRAINER_MISSING)."""
    return package in {p.strip() for p in os.environ.get("FAKE_TRAINER_MISSING", "").split(",")}


def raise_first(messages: list[str], exception=ValueError) -> None:
    for message in messages:
        if not any(part in message for part in _ELSEWHERE):
            raise exception(message)


def training_errors(args) -> list[str]:
    return list(fake_rules.check_training(dict(vars(args)))) if fake_rules is not None else []


def dataset_errors(user_config: dict, args) -> list[str]:
    if fake_rules is None:
        return []
    values = dict(vars(args))
    if isinstance(values.get("resolution"), tuple):  # prepare_dataset_args made it a tuple; the TOML had "W,H"
        values["resolution"] = ",".join(str(r) for r in values["resolution"])
    return list(fake_rules.check_dataset(user_config, values))
