"""`bespoke prepare` through click: flags, name lookup, JSON, the report table, errors and exit codes."""

from __future__ import annotations

import json

from click.testing import CliRunner

from bespoke.cli import main
from bespoke.dataset.synthetic import write_dataset


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_prepare_by_name_json_then_cached(synthetic_dataset, isolated_project):
    first = run("prepare", "synthetic", "-r", "64,128", "--json")
    assert first.exit_code == 0, first.stderr
    data = json.loads(first.stdout)
    assert [p["resolution"] for p in data["prepared"]] == [64, 128]
    assert data["source"] == str(synthetic_dataset.resolve())
    for entry in data["prepared"]:
        assert not entry["cached"]
        assert entry["summary"]["images"] == 8
        assert entry["dir"].startswith(str(isolated_project / ".bespoke_cache" / "prepared"))
    again = json.loads(run("prepare", "synthetic", "-r", "64", "-r", "128", "--json").stdout)
    assert [p["cached"] for p in again["prepared"]] == [True, True]
    assert [p["dir"] for p in again["prepared"]] == [p["dir"] for p in data["prepared"]]


def test_table_report_on_stdout(synthetic_dataset):
    result = run("prepare", str(synthetic_dataset), "-r", "512", "--layout", "pad", "--trigger", "bspk")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""  # the table is the result: stdout (streams that script well)
    text = " ".join(result.stdout.split())
    assert "8 (RGB 8)" in text
    assert "pad: 24->512 px, cells of 21 px, margin 4 px" in text
    assert "(new)" in text and "trigger 'bspk' added to 8" in text
    assert "cached" in " ".join(run("prepare", str(synthetic_dataset), "-r", "512", "--layout", "pad",
                                    "--trigger", "bspk").stdout.split())


def test_quiet_prints_nothing(synthetic_dataset):
    result = run("prepare", str(synthetic_dataset), "-q")
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""


def test_unknown_dataset_name_suggests(synthetic_dataset):
    result = run("prepare", "synthetc")
    assert result.exit_code == 3
    assert 'synthetc: no such folder here or in' in result.stderr
    assert '(did you mean "synthetic"?)' in result.stderr


def test_bad_flags_exit_2(synthetic_dataset):
    result = run("prepare", "synthetic", "-r", "abc")
    assert result.exit_code == 2 and "'abc' is not a number" in result.stderr
    result = run("prepare", "synthetic", "-r", "100")
    assert result.exit_code == 2 and "Error: resolution 100 is not usable" in result.stderr
    result = run("prepare", "synthetic", "--background", "blu")
    assert result.exit_code == 2 and 'did you mean "blue"' in result.stderr
    result = run("prepare", "synthetic", "--layout", "crop")
    assert result.exit_code == 2


def test_every_problem_listed_and_nothing_written(isolated_project):
    folder = isolated_project / "datasets" / "broken"
    write_dataset(folder, count=3, seed=4)
    pngs = sorted(folder.glob("*.png"))
    pngs[0].write_bytes(b"garbage")
    (folder / f"{pngs[1].stem}.txt").unlink()
    result = run("prepare", "broken", "-r", "64")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ") and "(+1 more problem in" in lines[-1]
    assert any(f"{pngs[0].name}: is not an image" in line for line in lines[:-1])
    assert any(f"{pngs[1].name}: missing caption" in line for line in lines[:-1])
    assert not (isolated_project / ".bespoke_cache" / "prepared").exists() or not any(
        (isolated_project / ".bespoke_cache" / "prepared").iterdir())


def test_help_lists_prepare():
    result = run("--help")
    assert "prepare" in result.stdout
    assert "--background" in run("prepare", "--help").stdout
