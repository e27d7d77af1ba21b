"""Sample images to process: a run's model/sample/ or any folder of images, each with what its sd-scripts
file name says (epoch, step, prompt index, seed: bespoke.kohya.naming) and the text of its prompt.
Any other name is still a sample, epoch unknown.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bespoke.errors import BespokeError, ProcessError
from bespoke.kohya.naming import SampleInfo, parse_sample_name
from bespoke.kohya.prompts import parse_prompt_file
from bespoke.run.paths import RunPaths, is_run_dir

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


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


def sample_folder(run_or_dir: Path) -> tuple[Path, Path | None]:
    """(folder holding the images, run folder or None)."""
    root = Path(run_or_dir)
    if is_run_dir(root):
        return RunPaths(root).sample_dir, root
    return root, None


def find_samples(run_or_dir) -> list[SampleInfo]:
    """Every sample image of a run (model/sample/) or a folder, sorted by epoch, step, prompt, name.

    Raises ProcessError with what to do when there is nothing to process."""
    root = Path(run_or_dir)
    if not root.exists():
        raise ProcessError(f"{root}: no such folder; pass a run folder (outputs/<run>) or a folder of images")
    if not root.is_dir():
        raise ProcessError(f"{root}: is a file; pass the folder that holds it (a run folder or a folder of images)")
    folder, run = sample_folder(root)
    if run is not None and not folder.is_dir():
        raise ProcessError(f"{run}: no samples yet ({folder} does not exist); train with sample prompts first "
                           "or run `bespoke generate`")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        where = f"run {run}: {folder}" if run is not None else str(folder)
        others = f" (it holds {len(files)} other files, e.g. {files[0].name})" if files else " (it is empty)"
        raise ProcessError(f"{where}: no sample images (.png/.jpg/.webp){others}")
    prompts: list[str] = []
    if run is not None:
        prompts_txt = RunPaths(run).prompts_txt
        if prompts_txt.is_file():
            prompts = read_prompt_lines(prompts_txt)
    infos = []
    for path in images:
        info = parse_sample_name(path)
        if info.prompt_index is not None and info.prompt_index < len(prompts):
            info = replace(info, prompt=prompts[info.prompt_index])
        infos.append(info)
    return sorted(infos, key=SampleInfo.sort_key)
