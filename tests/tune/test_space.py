"""The search space file: every key a real option ("did you mean"), ranges and budgets checked, and every corner
of the space planned, so a space that could propose a refused config is an error before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from tune_fixtures import space_text

from bespoke.errors import ConfigError
from bespoke.settings import load_settings
from bespoke.tune.space import SearchSpace, override, parse_space
from bespoke.tune.trial import check_space

SOURCE = Path("space.toml")


def parse(text: str) -> SearchSpace:
    return parse_space(text, SOURCE)


def test_the_fixture_space_parses_into_three_distributions_with_its_budget_and_pruner():
    space = parse(space_text(trials=8))
    assert [(p.key, p.kind) for p in space.params] == [("learning_rate", "float"), ("network_dim", "int"),
                                                       ("lr_scheduler", "categorical")]
    assert space.budget.trials == 8 and space.pruning.kind == "median" and space.direction == "maximize"
    dists = {p.key: p.distribution() for p in space.params}
    assert dists["learning_rate"].log and dists["network_dim"].step == 8
    assert len(list(space.corner_values())) == 8  # 2 x 2 x 2 corners
    assert space.overrides({"learning_rate": 1e-4, "network_dim": 8}) == (
        "max_train_epochs=4", "learning_rate=0.0001", "network_dim=8")


@pytest.mark.parametrize(("change", "message"), [
    (("[params.lr_scheduler]", "[params.lr_schedular]"), 'did you mean "lr_scheduler"'),
    (('type = "float"', 'type = "floatt"'), 'type = \'floatt\': choose float, int or categorical (did you mean "float"?)'),
    (("low = 1e-4", "low = 1e-1"), "low = 0.1 is not below high = 0.01"),
    (("low = 1e-4", "low = 0.0"), "a log range starts above 0"),
    (("trials = 8", "trialz = 8"), "[budget] key 'trialz'"),
    (("trials = 8", "usd = 5.0"), "usd needs gpu_price_per_hour"),
    (('kind = "median"', 'kind = "hyperband"'), "[pruner] kind = 'hyperband'"),
    (('seed = 3', 'objective = "profile"'), "vote-calibrated profiles are not part of this bespoke yet"),
    (('choices = ["constant", "cosine"]', 'choices = []'), "choices: give a list of distinct values"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_the_key(change, message):
    text = space_text(trials=8).replace(*change)
    with pytest.raises(ConfigError) as error:
        parse(text)
    assert str(error.value).startswith(str(SOURCE)) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_space_without_a_budget_never_ends_and_is_refused():
    with pytest.raises(ConfigError, match=r"\[budget\]: give trials, hours or usd"):
        parse(space_text().replace("trials = 8", ""))


def test_a_value_of_the_wrong_type_for_its_option_is_refused_as_set_would():
    text = space_text().replace('choices = ["constant", "cosine"]', 'choices = ["constant", "cosin"]')
    space = parse(text)  # an unknown scheduler is a value the option table refuses: found when planned
    with pytest.raises(ConfigError, match="cosin"):
        check_space(load_settings(), space, _dataset())


def _dataset() -> Path:
    from bespoke.dataset.synthetic import write_dataset

    folder = Path("datasets/bespoke_punks")
    write_dataset(folder, count=4, seed=5)
    return folder.resolve()


def test_every_corner_of_a_sound_space_plans_and_none_writes_a_run_folder():
    space = parse(space_text(trials=8))
    assert check_space(load_settings(), space, _dataset()) == 8
    assert not list(Path("outputs").glob("*/run.json"))


def test_a_range_whose_end_the_trainer_refuses_is_an_error_before_anything_runs():
    text = space_text().replace("""[params.network_dim]
type = "int"
low = 8""", """[params.caption_dropout_rate]
type = "float"
low = 0.0
high = 1.5

[params.network_dim]
type = "int"
low = 8""")
    with pytest.raises(ConfigError) as error:
        check_space(load_settings(), parse(text), _dataset())
    assert "the space can propose" in str(error.value) and "caption_dropout_rate=1.5" in str(error.value)


def test_an_override_is_written_as_set_takes_it():
    assert override("lr_scheduler", "cosine") == 'lr_scheduler="cosine"'
    assert override("network_alpha", 4.0) == "network_alpha=4.0"


def test_a_space_without_a_name_is_named_for_its_file_and_its_studys_copy_for_the_study(tmp_path):
    text = space_text().replace('name = "fake"\n', "")
    assert parse_space(text, Path("lr-dim.toml")).name == "lr-dim"
    assert parse_space(text, Path("outputs/tunes/lr-dim/space.toml"), "lr-dim").name == "lr-dim"


def test_an_objective_the_settings_cannot_measure_is_blamed_on_the_objective_not_a_parameter(isolated_project):
    text = space_text().replace('seed = 3', 'seed = 3\nobjective = "val-loss"')
    with pytest.raises(ConfigError) as error:
        check_space(load_settings(), parse(text), _dataset())
    message = str(error.value)
    assert message.startswith("space.toml: [study] objective = \"val-loss\" cannot be measured")
    assert "held out" in message and "bespoke.validation_share" in message
    assert "the space can propose" not in message and "narrow that parameter" not in message
