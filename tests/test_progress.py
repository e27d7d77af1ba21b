"""Long work reports through bespoke.progress and nothing else: library code opens tasks and says things, the
display the command line installs decides how they look (a rich bar on a terminal, plain lines in a pipe,
nothing with --quiet or without a display)."""

from __future__ import annotations

import io

from click.testing import CliRunner
from review_fixtures import make_planned_run
from rich.console import Console

from bespoke import progress
from bespoke.cli import main
from bespoke.cli.display import ConsoleDisplay, display_for
from bespoke.dataset.prepare import prepare_dataset
from bespoke.demo.simulator import simulate_run


class RecordedTask:
    def __init__(self, description: str, total: int | None):
        self.descriptions, self.total, self.done, self.closed = [description], total, 0, False

    def advance(self, n: int = 1) -> None:
        self.done += n

    def describe(self, text: str) -> None:
        self.descriptions.append(text)


class Recorder:
    """A bespoke.progress.Display that keeps everything it is told."""

    def __init__(self):
        self.tasks: list[RecordedTask] = []
        self.said: list[tuple[str, str]] = []

    def open(self, description: str, total: int | None) -> RecordedTask:
        self.tasks.append(RecordedTask(description, total))
        return self.tasks[-1]

    def close(self, task: RecordedTask) -> None:
        task.closed = True

    def say(self, text: str, level: str = "info") -> None:
        self.said.append((level, text))

    def summary(self) -> list[tuple[str, int | None, int, bool]]:
        return [(t.descriptions[0], t.total, t.done, t.closed) for t in self.tasks]


def test_prepare_counts_the_images_it_checks_then_builds_and_a_cached_one_opens_no_task(synthetic_dataset, tmp_path):
    recorder = Recorder()
    with progress.use_display(recorder):
        prepared = prepare_dataset(synthetic_dataset, 64, cache_dir=tmp_path / "cache")
        again = prepare_dataset(synthetic_dataset, 64, cache_dir=tmp_path / "cache")
    assert recorder.summary() == [("checking 8 images", 8, 8, True),
                                  (f"preparing {prepared.layout.describe()}", 8, 8, True)]
    assert again.cached and progress.current() is progress.SILENT  # the previous display is back


def test_the_simulator_counts_every_sample_it_draws(tmp_path):
    run = make_planned_run(tmp_path, "64-test-bbbb", resolution=64, prompts=2, epochs=3)
    recorder = Recorder()
    with progress.use_display(recorder):
        result = simulate_run(run)
    assert recorder.summary() == [("simulating 64-test-bbbb", 6, 6, True)] and len(result.samples) == 6


def test_without_a_display_tasks_and_messages_go_nowhere_and_a_failing_display_is_dropped():
    with progress.task("nothing shows this", total=3) as silent:
        silent.advance()
        silent.describe("still nothing")
    progress.say("nobody hears this")

    class HungUp(Recorder):
        def say(self, text: str, level: str = "info") -> None:
            raise OSError("the terminal went away")

    with progress.use_display(HungUp()):
        progress.say("lost")  # never raises: the work goes on without a display
        assert progress.current() is progress.SILENT


def test_the_console_display_draws_a_bar_on_a_terminal_and_plain_lines_in_a_pipe():
    pipe = io.StringIO()
    display = ConsoleDisplay(Console(file=pipe, force_terminal=False, width=200))
    with progress.use_display(display):
        with progress.task("checking 2 images", total=2) as task:
            task.advance(2)
        progress.say("a message", "warning")
    assert pipe.getvalue() == "a message\n"  # no bar redrawn into a log
    terminal = io.StringIO()
    display = ConsoleDisplay(Console(file=terminal, force_terminal=True, width=80))
    with progress.use_display(display):
        with progress.task("checking 2 images", total=2) as task:
            task.describe("preparing 2 images")
            task.advance(2)
            progress.say("said while a bar runs")
    assert "checking 2 images" in terminal.getvalue() and "said while a bar runs" in terminal.getvalue()
    assert display._bar is None  # the last task closed: the live bar stopped
    assert display_for(quiet=True) is progress.SILENT


def test_quiet_silences_the_display_of_a_command(synthetic_dataset):
    loud = CliRunner().invoke(main, ["prepare", str(synthetic_dataset), "-r", "64", "--json"])
    quiet = CliRunner().invoke(main, ["prepare", str(synthetic_dataset), "-r", "128", "-q"])
    assert loud.exit_code == 0 and quiet.exit_code == 0 and quiet.stdout == quiet.stderr == ""
