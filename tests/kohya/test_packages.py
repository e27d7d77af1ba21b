"""The optional trainer packages (bespoke.kohya.packages): what a config needs, and the fix the preflight gives
when the trainer's venv lacks one: install the package, never a --set that trains another network."""

from __future__ import annotations

from bespoke.kohya.packages import needed_by
from bespoke.kohya.preflight import FAIL, HARDWARE, fix_for

# the real trainer's messages (sd-scripts 48d368fa on the CPU harness, without the GUI's extra packages)
NO_LYCORIS = "ModuleNotFoundError: No module named 'lycoris'"
NO_DADAPTATION = "ImportError: No dadaptation / dadaptation がインストールされていないようです"


def test_a_missing_lycoris_or_dadaptation_is_installed_not_swapped():
    lycoris = fix_for("network module", FAIL, NO_LYCORIS)
    assert lycoris.startswith("install `lycoris-lora` in the trainer's venv") and "pip install lycoris-lora" in lycoris
    assert "--set" not in lycoris and "networks.lora" not in lycoris  # another network would train silently
    dadaptation = fix_for("optimizer", FAIL, NO_DADAPTATION)
    assert dadaptation.startswith("install `dadaptation` in the trainer's venv") and "--set" not in dadaptation
    prodigy = fix_for("optimizer", FAIL, "ImportError: No Prodigy / Prodigy がインストールされていないようです")
    assert "`prodigyopt`" in prodigy and "requirements.txt" in prodigy


def test_other_network_modules_keep_their_fixes():
    assert "networks.lora" in fix_for("network module", FAIL, "ModuleNotFoundError: No module named 'networks.lroa'")
    other = fix_for("network module", FAIL, "ModuleNotFoundError: No module named 'my_net'")
    assert other.startswith("install the package of network_module")
    # GPU-only packages keep the preflight's fix, which names what works without the GPU
    assert "--set xformers=false" in fix_for("attention", HARDWARE, "ImportError: No xformers / xformers...")


def test_what_a_config_needs():
    assert [p.pypi for p in needed_by({"network_module": "lycoris.kohya", "optimizer_type": "DAdaptAdam"})] == \
        ["lycoris-lora", "dadaptation"]
    assert [p.pypi for p in needed_by({"network_module": "networks.lora", "optimizer_type": "AdamW8bit",
                                       "xformers": True})] == ["bitsandbytes", "xformers"]
    assert [p.pypi for p in needed_by({"optimizer_type": "Lion"})] == ["lion-pytorch"]
    assert [p.pypi for p in needed_by({"optimizer_type": "prodigyplus.ProdigyPlusScheduleFree"})] == \
        ["prodigy-plus-schedule-free"]
    assert needed_by({"network_module": "networks.lora", "optimizer_type": "AdamW", "sdpa": True}) == []
