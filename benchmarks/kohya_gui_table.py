"""The kohya_ss GUI import table (issue 20): every LoRA preset and saved test config of bmaltais/kohya_ss through
`bespoke import kohya-gui`, and every preset it imports preflighted on the real trainer.

    .venv/bin/python benchmarks/kohya_gui_table.py --git-dir DIR [--commit 45088f04] [--python PY] [-r 512]
    .venv/bin/python benchmarks/kohya_gui_table.py --checkout ~/kohya_ss [...]

The files are `presets/lora/*.json` and `test/config/*.json` of a kohya_ss checkout (a work tree, or a git
directory read at `--commit`). Without one it says so and exits 0. The preflight (`bespoke preflight`: the
trainer's own code up to the model load) runs when BESPOKE_TEST_SD_SCRIPTS, _SD_PYTHON, _BASE_MODEL and
_TOKENIZER_CACHE are set (`source <harness>/env.sh`), on a throwaway project of 4 synthetic punks at `-r`;
`--python` names another trainer Python (e.g. a venv with the optional packages bespoke names installed:
lycoris-lora, dadaptation). Prints a markdown table: what bespoke did with each file, the GUI translations
it applied, the preflight verdict, and what a GPU box would still need (NEEDS-HARDWARE stages).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TREE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TREE))

from bespoke.dataset.synthetic import write_dataset  # noqa: E402
from bespoke.errors import BespokeError  # noqa: E402
from bespoke.kohya.gui_import import import_gui_config  # noqa: E402
from bespoke.kohya.preflight import FAIL, HARDWARE  # noqa: E402
from bespoke.run.plan import PlanRequest, plan_run  # noqa: E402
from bespoke.run.preflight import preflight_runs  # noqa: E402
from bespoke.settings import Settings  # noqa: E402

FOLDERS = ("presets/lora", "test/config")
TRAINER = ("BESPOKE_TEST_SD_SCRIPTS", "BESPOKE_TEST_SD_PYTHON", "BESPOKE_TEST_BASE_MODEL",
           "BESPOKE_TEST_TOKENIZER_CACHE")
KINDS = (("an SDXL LoRA", "SDXL LoRA"), ("a FLUX.1 LoRA", "FLUX.1 LoRA"), ("a DreamBooth", "DreamBooth"),
         ("a fine-tuning", "fine-tuning"), ("a Textual Inversion", "Textual Inversion"),
         ("not a kohya_ss GUI training", "not a training config"), ("an SD 2.x", "SD 2.x LoRA"))
TAGS = (("network_module 'lycoris.kohya'", "LyCORIS network"), (", network_args conv_dim", "LoCon conv args"),
        ("LoRA_type \"LoCon\" is", "old LoCon name"),
        ("noise_offset_type 'Multires'", "Multires noise"), ("lr_warmup =", "warmup % -> fraction"),
        ("network_train_unet_only", "TE lr 0 -> U-Net only"), ("network_train_text_encoder_only", "U-Net lr 0 -> TE only"),
        ("additional_parameters", "additional_parameters"), ("max_train_steps =", "steps -> epochs"),
        ("use_8bit_adam", "use_8bit_adam"), ("use_wandb", "use_wandb"))


def gui_files(options, into: Path) -> list[Path]:
    """The JSON files of the two folders, copied into `into` (from the work tree or the git directory)."""
    if options.checkout:
        root = Path(options.checkout).expanduser()
        return sorted(p for folder in FOLDERS for p in (root / folder).glob("*.json"))
    git = ["git", f"--git-dir={options.git_dir}"]
    names = subprocess.run([*git, "ls-tree", "--name-only", options.commit, *(f + "/" for f in FOLDERS)],
                           capture_output=True, text=True, check=True).stdout.split("\n")
    files = []
    for name in sorted(n for n in names if n.endswith(".json")):
        target = into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(subprocess.run([*git, "show", f"{options.commit}:{name}"], capture_output=True,
                                          check=True).stdout)
        files.append(target)
    return files


def import_one(path: Path, out: Path) -> dict:
    """{file, kind, result ('imported'/'refused'), what, preset path}."""
    row = {"file": f"{path.parent.name}/{path.name}", "kind": "SD 1.x LoRA"}
    try:
        result = import_gui_config(path, out_dir=out, name=f"gui{len(list(out.glob('*.toml'))):02d}")
    except BespokeError as exc:
        message = str(exc).split(": ", 1)[-1]
        row["kind"] = next((kind for prefix, kind in KINDS if message.startswith(prefix)), "?")
        return {**row, "result": "refused", "what": message.split(";")[0].split(": it trains")[0]}
    notes = result.imported.translated
    tags = [tag for prefix, tag in TAGS if any(prefix in note for note in notes)]
    result_word = "translated" if tags else "as-is"
    launch = [k for k, _, why in result.imported.skipped if k.startswith("dynamo")]
    if launch:
        tags.append("not taken: " + ", ".join(launch) + " (accelerate launch settings)")
    return {**row, "result": result_word, "what": "; ".join(tags), "preset": result.path,
            "packages": ", ".join(p.pypi for p in result.packages if not p.gpu_only)}


def preflight(rows: list[dict], python: str, resolution: int, project: Path) -> None:
    """Plan each imported preset at `resolution` and preflight them all in one probe; the verdict into each row."""
    cache = os.environ["BESPOKE_TEST_TOKENIZER_CACHE"]
    settings = Settings(project_root=project, outputs_dir=project / "outputs", datasets_dir=project / "datasets",
                        cache_dir=project / "cache", sd_scripts=Path(os.environ["BESPOKE_TEST_SD_SCRIPTS"]),
                        sd_python=python, base_model=os.environ["BESPOKE_TEST_BASE_MODEL"])
    write_dataset(project / "datasets" / "punks", count=4, seed=3)
    planned = [row for row in rows if "preset" in row]
    runs = [plan_run(settings, PlanRequest(resolution=resolution, dataset=project / "datasets" / "punks",
                                           preset=str(row["preset"]),
                                           overrides=(f'tokenizer_cache_dir="{cache}"',)), progress=False).paths.root
            for row in planned]
    report = preflight_runs(settings, runs)
    for row, run in zip(planned, report.runs, strict=True):
        failed = [f"{s.name}: {s.message[:90]} -> {s.fix}" for s in run.stages if s.status == FAIL]
        row["preflight"] = ("FAIL " + " / ".join(failed)) if failed else (run.error or "passes")
        row["gpu"] = ", ".join(f"{s.name} ({s.message.split(' (')[0][:60]})" for s in run.stages
                               if s.status == HARDWARE) or "-"


def table(rows: list[dict]) -> str:
    lines = ["| # | file | kind | bespoke import | GUI translations / reason | trainer packages | real preflight | "
             "a GPU box still needs |", "|---|---|---|---|---|---|---|---|"]
    for number, row in enumerate(rows, 1):
        cells = [str(number), f"`{row['file']}`", row["kind"], row["result"], row["what"] or "-",
                 row.get("packages") or "-", row.get("preflight", "-"), row.get("gpu", "-")]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", help="a kohya_ss work tree")
    parser.add_argument("--git-dir", help="a kohya_ss git directory (read at --commit)")
    parser.add_argument("--commit", default="45088f04")
    parser.add_argument("--python", default=os.environ.get("BESPOKE_TEST_SD_PYTHON"), help="the trainer's Python")
    parser.add_argument("-r", "--resolution", type=int, default=512)
    options = parser.parse_args()
    source = options.checkout or options.git_dir
    if not source or not Path(source).expanduser().exists():
        print("skipped: no kohya_ss checkout (pass --checkout WORK_TREE or --git-dir GIT_DIR)")
        return 0
    with tempfile.TemporaryDirectory(prefix="bespoke-gui-table-") as tmp:
        folder = Path(tmp)
        files = gui_files(options, folder / "files")
        (folder / "presets").mkdir()
        rows = [import_one(path, folder / "presets") for path in files]
        missing = [v for v in TRAINER if not os.environ.get(v)]
        if missing:
            print(f"preflight skipped: set {', '.join(missing)} (source <harness>/env.sh)", file=sys.stderr)
        else:
            preflight(rows, options.python, options.resolution, folder / "project")
    counts = {result: sum(r["result"] == result for r in rows) for result in ("as-is", "translated", "refused")}
    print(f"{len(rows)} files at {options.commit if options.git_dir else source}: {counts}; preflight with "
          f"{options.python} at {options.resolution} px\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
