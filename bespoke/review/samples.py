"""Sample images to process, and what is known of each: the three kinds of folder people have.

- a bespoke run (run.json): its model/sample/, prompts from config/prompts.txt;
- an sd-scripts `output_dir` (what every kohya user has: `sample/` beside the checkpoints): the images in
  `sample/`, prompts from a `prompts.txt` beside `sample/` when there is one;
- any folder of images (512 px samples, 24 px pictures, anything square): each image's prompt from the `.txt`
  of the same name beside it (sd-scripts' caption convention), when there is one.

What an sd-scripts file name says (epoch, step, prompt index, seed: bespoke.kohya.naming) is read first; any
other name may still say its epoch with an `e<N>` or `epoch<N>` part (e01_green_bg_lad.png,
final_e10_cash_lad.png), and what follows that part (else what precedes it) is its `label`: the same label
in two epochs is the same prompt drawn again, so the epochs can be compared sample for sample.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from bespoke.errors import BespokeError, ProcessError
from bespoke.kohya.naming import SampleInfo, parse_sample_name
from bespoke.kohya.prompts import parse_prompt_file
from bespoke.run.paths import RunPaths, is_run_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
OUTPUT_SAMPLES = "sample"  # sd-scripts' samples folder inside its output_dir
PROMPT_FILE = "prompts.txt"
_EPOCH_PART = re.compile(r"(?:^|(?<=[_\-. ]))(?:e|epoch[_-]?)(\d{1,6})(?=$|[_\-. ])", re.IGNORECASE)


def read_prompt_lines(path: Path) -> list[str]:
    """Prompt texts of a sd-scripts .txt prompt file, in sample-index order (blank and # lines skipped,
    the ` --x value` options cut off). Uses bespoke.kohya.prompts when the file is valid for it."""
    path = Path(path)
    try:
        return [p.prompt for p in parse_prompt_file(path)]
    except BespokeError:  # a hand-edited file bespoke would reject still links its prompt texts
        pass
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    lines = [line.strip() for line in text.splitlines()]
    return [line.split(" --")[0].strip() for line in lines if line and not line.startswith("#")]


def _images(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                      and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError:
        return []


def is_output_dir(folder: Path) -> bool:
    """An sd-scripts output_dir: no images of its own, a `sample/` folder of images, and no run.json."""
    folder = Path(folder)
    return (not is_run_dir(folder) and (folder / OUTPUT_SAMPLES).is_dir() and not _images(folder)
            and bool(_images(folder / OUTPUT_SAMPLES)))


def sample_folder(run_or_dir: Path) -> tuple[Path, Path | None]:
    """(folder holding the images, run folder or None)."""
    root = Path(run_or_dir)
    if is_run_dir(root):
        return RunPaths(root).sample_dir, root
    if is_output_dir(root):
        return root / OUTPUT_SAMPLES, None
    return root, None


def prompt_file(run_or_dir: Path) -> Path | None:
    """The prompt file of a run (config/prompts.txt) or of an sd-scripts output_dir (prompts.txt beside
    sample/), when it is there."""
    root = Path(run_or_dir)
    if is_run_dir(root):
        return RunPaths(root).prompts_txt
    return root / PROMPT_FILE if is_output_dir(root) else None


def epoch_and_label(stem: str) -> tuple[int | None, str | None]:
    """(epoch, label) of a plain file name (module docstring); (None, None) when it names no epoch."""
    match = _EPOCH_PART.search(stem)
    if match is None:
        return None, None
    after, before = stem[match.end():].strip("_-. "), stem[:match.start()].strip("_-. ")
    return int(match.group(1)), (after or before or None)


def _with_prompt(info: SampleInfo, prompts: list[str]) -> SampleInfo:
    if info.prompt_index is not None and info.prompt_index < len(prompts):
        return replace(info, prompt=prompts[info.prompt_index])
    caption = info.path.with_suffix(".txt")
    if caption.is_file():
        try:
            lines = caption.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            lines = []
        if lines and lines[0].strip():
            return replace(info, prompt=lines[0].strip())
    return info


def sample_info(path: Path, prompts: list[str]) -> SampleInfo:
    """What the file name says of one sample (module docstring), with its prompt text."""
    info = parse_sample_name(path)
    if info.prompt_index is None:
        epoch, _ = epoch_and_label(info.name)
        info = replace(info, epoch=epoch)
    return _with_prompt(info, prompts)


def label_of(info: SampleInfo) -> str | None:
    """The label that pairs a plain-named sample across epochs (None for an sd-scripts name)."""
    return None if info.prompt_index is not None else epoch_and_label(info.name)[1]


def find_samples(run_or_dir) -> list[SampleInfo]:
    """Every sample image of a run (model/sample/), an sd-scripts output_dir (sample/) or a folder, sorted by
    epoch, step, prompt, name.

    Raises ProcessError with what to do when there is nothing to process."""
    root = Path(run_or_dir)
    if not root.exists():
        raise ProcessError(f"{root}: no such folder; pass a run folder (outputs/<run>), an sd-scripts output_dir "
                           "or a folder of images")
    if not root.is_dir():
        raise ProcessError(f"{root}: is a file; pass the folder that holds it (a run folder or a folder of images)")
    folder, run = sample_folder(root)
    if run is not None and not folder.is_dir():
        raise ProcessError(f"{run}: no samples yet ({folder} does not exist); train with sample prompts first "
                           "or run `bespoke generate`")
    images = _images(folder)
    if not images:
        files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
        where = f"run {run}: {folder}" if run is not None else str(folder)
        others = f" (it holds {len(files)} other files, e.g. {files[0].name})" if files else " (it is empty)"
        raise ProcessError(f"{where}: no sample images (.png/.jpg/.webp){others}")
    prompts_txt = prompt_file(root)
    prompts = read_prompt_lines(prompts_txt) if prompts_txt is not None and prompts_txt.is_file() else []
    return sorted((sample_info(path, prompts) for path in images), key=SampleInfo.sort_key)
