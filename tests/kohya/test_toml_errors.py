"""A broken TOML is a one-line error naming the file and the line, wherever bespoke reads one: its own files
(bespoke.toml, presets) with tomllib, the files sd-scripts reads (training/dataset config) with toml 0.10.2
as sd-scripts does — including the inputs where toml 0.10.2 itself crashes (IndexError) without a line."""

from __future__ import annotations

import re

import pytest

from bespoke.errors import ConfigError
from bespoke.kohya.config import load_toml
from bespoke.kohya.presets import load_preset_file
from bespoke.settings import load_settings

BROKEN = "[training]\nnetwork_dim = 8\nlearning_rate = [1e-4,\nseed = 1\n"


@pytest.mark.parametrize("reader", [load_toml, load_preset_file])
def test_a_broken_file_names_the_file_and_the_line(reader, tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    with pytest.raises(ConfigError) as error:
        reader(path)
    message = str(error.value)
    # toml 0.10.2 points at the array (line 3), tomllib at where it stops making sense (line 4)
    assert message.startswith(str(path)) and "not valid TOML" in message and re.search(r"line [34]", message) and "\n" not in message


def test_toml_0_10_2_crashes_are_reported_with_the_strict_parsers_line(tmp_path):
    path = tmp_path / "crash.toml"
    path.write_text('a = 1\nb = "x\\\n')  # toml 0.10.2 raises a bare error here; tomllib names the line
    with pytest.raises(ConfigError, match=r"crash.toml: not valid TOML: .*line 2"):
        load_toml(path)


def test_bespoke_toml_with_a_syntax_error(isolated_project):
    (isolated_project / "bespoke.toml").write_text('sd_scripts = "/x"\nbase_model = \n')
    with pytest.raises(ConfigError, match=r"bespoke.toml, line 2, column \d+: not valid TOML"):
        load_settings()
