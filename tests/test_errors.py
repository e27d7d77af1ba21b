"""did-you-mean: the candidate a user meant comes first (case-insensitive, prefix and similarity)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bespoke.cli import main
from bespoke.errors import did_you_mean
from bespoke.kohya.options import (
    lr_scheduler_names,
    optimizer_names,
    torch_optim_names,
    train_network_options,
)

OPTIMIZERS = [*optimizer_names(), *torch_optim_names()]  # what `optimizer_type` is checked against


@pytest.mark.parametrize(("typed", "meant", "choices"), [
    ("adamw9", "AdamW", OPTIMIZERS),
    ("adamw", "AdamW", OPTIMIZERS),
    ("adamw8", "AdamW8bit", OPTIMIZERS),
    ("ADAMW8BIT", "AdamW8bit", OPTIMIZERS),
    ("prodigi", "Prodigy", OPTIMIZERS),
    ("dadaptadam", "DAdaptAdam", OPTIMIZERS),
    ("lion8", "Lion8bit", OPTIMIZERS),
    ("cosine_with_restart", "cosine_with_restarts", list(lr_scheduler_names())),
    ("Cosine", "cosine", list(lr_scheduler_names())),
    ("netwrok_dim", "network_dim", list(train_network_options())),
    ("Network_Alpha", "network_alpha", list(train_network_options())),
])
def test_did_you_mean_puts_the_meant_choice_first(typed, meant, choices):
    assert did_you_mean(typed, choices) == f' (did you mean "{meant}"?)'


def test_did_you_mean_stays_quiet_when_nothing_is_close():
    assert did_you_mean("zzzz", OPTIMIZERS) == ""


def test_set_optimizer_typo_suggests_adamw(synthetic_dataset):
    result = CliRunner().invoke(main, ["plan", "-r", "64", "--dataset", str(synthetic_dataset),
                                       "--set", "optimizer_type=adamw9"])
    assert result.exit_code == 2
    assert '(did you mean "AdamW"?)' in result.output.replace("\n", "")
