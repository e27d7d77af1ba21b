"""The `bespoke` click group: one module per command, named for it (`bespoke generate` is cli/generate.py).

Each command parses its flags, calls one library function and renders the result; domain errors become
one-line messages with their exit code in `BespokeGroup` (cli/common.py). Heavy libraries (numpy, Pillow,
rich tables, the pipeline) are imported inside the commands, so `bespoke --help` stays fast.
"""

from __future__ import annotations

import click

from bespoke import __version__
from bespoke.cli.baseline import baseline
from bespoke.cli.cancel import cancel
from bespoke.cli.check import check
from bespoke.cli.common import BespokeGroup
from bespoke.cli.demo import demo
from bespoke.cli.doctor import doctor
from bespoke.cli.export import export
from bespoke.cli.generate import generate
from bespoke.cli.import_ import import_
from bespoke.cli.inspect import inspect
from bespoke.cli.plan import plan
from bespoke.cli.preflight import preflight
from bespoke.cli.prepare import prepare
from bespoke.cli.presets import presets
from bespoke.cli.process import process
from bespoke.cli.review import review
from bespoke.cli.runs import runs
from bespoke.cli.sweep import sweep
from bespoke.cli.train import train
from bespoke.cli.tune import tune
from bespoke.cli.vote import vote

EXIT_CODES = """\b
Exit codes:
  0    done
  1    doctor: this machine is not ready (or bespoke itself crashed)
  2    bad flags, arguments or config (a preset, TOML, prompt file, bespoke.toml)
  3    the dataset cannot be prepared
  4    a run folder is missing, locked or in the wrong state
  5    the trainer (sd-scripts) failed or produced nothing (or preflight could not run)
  6    process: no sample could be processed
  7    preflight refused: the trainer would stop on this run's configs on this box
       (preflight, and train/sweep/generate before launching: nothing was launched)
  129  stopped by SIGHUP (terminal closed), 130 by Ctrl-C, 143 by SIGTERM: the trainer was
       stopped and the run marked interrupted; run the same command again to resume
"""


@click.group(cls=BespokeGroup, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="bespoke")
@click.option("--outputs", "outputs_dir", type=click.Path(path_type=str), help="Runs folder (default: ./outputs).")
@click.option("--sd-scripts", "sd_scripts", type=click.Path(path_type=str), help="Your kohya-ss sd-scripts checkout.")
@click.option("--python", "sd_python", help="The Python of that checkout (default: its venv, else this one).")
@click.option("--base-model", "base_model", help="SD 1.5 base model: a local file/folder or a hub id.")
@click.pass_context
def main(ctx: click.Context, outputs_dir: str | None, sd_scripts: str | None, sd_python: str | None,
         base_model: str | None) -> None:
    """bespoke: 24x24 punks -> SD 1.5 LoRA (kohya-ss sd-scripts) -> clean 24 px candidates.

    Settings come from these flags, then BESPOKE_* environment variables, then bespoke.toml in the
    project root, then defaults. RUN arguments take a run folder, a run id or a unique prefix of one.
    """
    ctx.obj = {"flags": {"outputs_dir": outputs_dir, "sd_scripts": sd_scripts, "sd_python": sd_python,
                         "base_model": base_model}}


for _command in (prepare, plan, presets, check, preflight, train, sweep, tune, cancel, runs, doctor, process, review,
                 generate, inspect, export, import_, baseline, demo, vote):
    main.add_command(_command)
