"""Score profiles in the project: written and read back, replaced by name, and a bad file refused with the
file, the key and what to do."""

from __future__ import annotations

import pytest

from bespoke.errors import ConfigError, UsageError
from bespoke.review.profiles import PROFILES_FILE, Profile, load_profile, load_profiles, save_profile
from bespoke.review.selection import WEIGHTS


def test_a_profile_is_saved_read_back_and_replaced_by_name(tmp_path):
    first = Profile("alice", {"pixel_art": 0.4, "few_colours": 2.1}, "2026-12-07T10:00:00+00:00", 54,
                    ("outputs/run/report/votes.jsonl",), 0.61, 0.84)
    assert save_profile(tmp_path, first) is None
    save_profile(tmp_path, Profile("bob", {"varied": 1.0}))
    assert load_profiles(tmp_path) == {"alice": first, "bob": Profile("bob", {"varied": 1.0})}
    assert load_profile(tmp_path, "alice").score_weights() == {**WEIGHTS, "pixel_art": 0.4, "few_colours": 2.1}
    again = Profile("alice", {"pixel_art": 1.5})
    assert save_profile(tmp_path, again) == first
    assert load_profiles(tmp_path)["alice"] == again and "bob" in load_profiles(tmp_path)
    text = (tmp_path / PROFILES_FILE).read_text()
    assert text.startswith("# bespoke's score profiles") and "[profiles.alice.weights]" in text
    assert load_profile(tmp_path, "default").weights == WEIGHTS  # the stated weights, always there


def test_unknown_profiles_and_reserved_names(tmp_path):
    with pytest.raises(UsageError, match="score profile 'carol': not in .*score_profiles.toml \\(profiles: none yet"):
        load_profile(tmp_path, "carol")
    with pytest.raises(UsageError, match="that name is the stated weights"):
        save_profile(tmp_path, Profile("default", {"pixel_art": 1.0}))
    with pytest.raises(UsageError, match="letters, digits"):
        save_profile(tmp_path, Profile("a.b", {"pixel_art": 1.0}))


@pytest.mark.parametrize(("body", "message"), [
    ("[profiles.x.weights]\npixle_art = 1.0\n", r"'pixle_art' is not a term of the score.*did you mean .pixel_art."),
    ("[profiles.x.weights]\npixel_art = -1\n", r"pixel_art = -1: a weight is a number >= 0"),
    ("[profiles.x.weights]\npixel_art = 0\n", r"every weight is 0"),
    ("[profiles.x]\nvotes = 3\nweight = 1\n", r"unknown key 'weight'"),
    ("[profiles.x]\nvotes = 3\n", r"\[profiles.x.weights\] must be a table"),
    ("[other]\na = 1\n", r"only \[profiles.NAME\] tables belong here"),
])
def test_a_bad_profiles_file_names_the_file_and_the_key(tmp_path, body, message):
    (tmp_path / PROFILES_FILE).write_text(body)
    with pytest.raises(ConfigError, match=message) as caught:
        load_profiles(tmp_path)
    assert str(tmp_path / PROFILES_FILE) in str(caught.value)
    before = (tmp_path / PROFILES_FILE).read_bytes()
    with pytest.raises(ConfigError):
        save_profile(tmp_path, Profile("y", {"pixel_art": 1.0}))  # a bad file is never overwritten
    assert (tmp_path / PROFILES_FILE).read_bytes() == before


def test_rescoring_with_the_stated_weights_gives_the_reports_own_score(tmp_path):
    from vote_fixtures import processed_run

    from bespoke.review.report import load_report
    from bespoke.review.selection import rescored

    report = load_report(processed_run(tmp_path / "outputs"))
    same = rescored(report, WEIGHTS, "default")
    assert [r.score.total for r in same.epochs] == [r.score.total for r in report.epochs]
    assert same.best is not None and report.best is not None and same.best.epoch == report.best.epoch
    art = rescored(report, {**{t: 0.0 for t in WEIGHTS}, "pixel_art": 1.0}, "art")
    by_art = max((r for r in report.epochs if r.epoch), key=lambda r: r.score.terms["pixel_art"])
    assert art.best is not None and art.best.epoch == by_art.epoch != report.best.epoch
    assert art.best.rule.endswith("; weights of score profile art: clean_cells 0, feature_contrast 0, "
                                  "few_colours 0, pixel_art 1")
    assert art.best.tied == report.best.tied  # three samples an epoch: none told apart, the pick by quality


def test_review_process_and_export_score_with_a_profile_when_asked(tmp_path, isolated_project):
    import json

    from click.testing import CliRunner
    from vote_fixtures import processed_run

    from bespoke.cli import main

    run = processed_run(tmp_path / "outputs")  # the stated weights pick epoch 4; pixel art alone epoch 2
    save_profile(isolated_project, Profile("art", {**{t: 0.0 for t in WEIGHTS}, "pixel_art": 1.0}))
    report_before = (run / "report" / "report.json").read_bytes()
    review = CliRunner().invoke(main, ["review", str(run), "--profile", "art", "--json"])
    assert review.exit_code == 0, review.output
    [summary] = json.loads(review.stdout)["runs"]
    assert summary["best"]["epoch"] == 2 and "weights of score profile art" in summary["best"]["rule"]
    assert (run / "report" / "report.json").read_bytes() == report_before  # report.json keeps the stated score
    (isolated_project / "bespoke.toml").write_text('score_profile = "art"\n')
    process = CliRunner().invoke(main, ["process", str(run)])
    assert process.exit_code == 0 and "pick: epoch 2" in process.output, process.output
    export = CliRunner().invoke(main, ["export", str(run), "--json"])
    assert json.loads(export.stdout)["epoch"] == 2
    stated = CliRunner().invoke(main, ["export", str(run), "--profile", "default", "--json"])
    assert json.loads(stated.stdout)["epoch"] == 4
    missing = CliRunner().invoke(main, ["review", str(run), "--profile", "nobody"])
    assert missing.exit_code != 0 and "score profile 'nobody': not in" in missing.output
