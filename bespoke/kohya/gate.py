"""bespoke's gate: run by `accelerate launch` in the TRAINER's Python instead of sd-scripts' script (never
imported by bespoke; only the standard library at module level).

`python gate.py REPORT SCRIPT ARGS...`: checks `SCRIPT ARGS` in the run folder (the working directory) with
the probe's stages (probe.py beside this file: train_network.py's, or gen_img.py's), writes the answer to
REPORT (JSON, the probe's shape plus the seconds spent) and, when every stage passed, runs SCRIPT as
`__main__` in this process. sd-scripts is imported once for the check and the run, so the check costs only
its stages. A stage that fails prints one line per problem on stderr and exits 1 before SCRIPT runs.
`python gate.py --no-check SCRIPT ARGS...` runs no check (`--no-preflight`) but guards the stop all the same.

The stop guard: SIGINT and SIGTERM become a KeyboardInterrupt (sd-scripts unwinds as after a Ctrl-C), except
while the trainer writes a checkpoint or a state, or draws samples: then the stop waits until that is complete,
so no file is cut and no epoch loses its samples. A stop pending at the end of one such section waits LINGER
seconds for the next one (sd-scripts saves the checkpoint, then the state, then draws the epoch's samples); a
stop during the last epoch's samples or the final state waits for the final checkpoint. Every section and every
decision is one `[bespoke gate] KIND: text` line on stdout (bespoke.kohya.preflight.parse_gate_line reads them:
the supervisor extends its grace while the trainer is busy). The last line says how the trainer ended.
"""

from __future__ import annotations

import _thread
import functools
import importlib
import importlib.util
import json
import os
import runpy
import signal
import sys
import threading
import time

NO_CHECK = "--no-check"
PREFIX = "[bespoke gate] "
LINGER = 1.0  # seconds a stop pending after a save waits for the next section of the same epoch end
CHAIN = 2  # sections that may follow the one a stop landed in: checkpoint -> state -> samples
GUARDED = (signal.SIGINT, signal.SIGTERM)


def _say(kind: str, text: str) -> None:
    """One line on stdout, written with os.write: safe inside a signal handler (no buffered writer re-entered)."""
    try:
        os.write(1, f"{PREFIX}{kind}: {text}\n".encode("utf-8", "replace"))
    except OSError:
        pass


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopGuard:
    """Turns SIGINT/SIGTERM into a KeyboardInterrupt at a safe point (see the module docstring)."""

    def __init__(self, linger: float = LINGER):
        self.linger = linger
        self.pending: str | None = None  # the first stop signal's name
        self.section: str | None = None  # the save or sampling running now
        self.maybe: str | None = None  # a sampling call that may draw nothing (sd-scripts calls it every step)
        self.holding = False  # the last epoch is complete: hold the stop until the final checkpoint
        self.timer: threading.Timer | None = None
        self.fired = False
        self.closed = False
        self.links = 0  # sections begun while the stop was pending

    def install(self) -> None:
        for signum in GUARDED:
            signal.signal(signum, self._on_signal)

    def _busy(self) -> str | None:
        if self.section or self.maybe:
            return self.section or self.maybe
        return "finishing the run (the final state and checkpoint)" if self.holding else None

    def close(self) -> None:
        """The script is over: no more stops to time (a late signal changes nothing now)."""
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()

    def _on_signal(self, signum, frame) -> None:
        if self.closed:
            return
        first = self.pending is None
        if first:
            self.pending = _signal_name(signum)
        busy = self._busy()
        if busy is not None:
            if first:
                self.links = 0
                _say("deferred", f"{self.pending} while {busy}; the stop takes effect when that is complete")
            return
        if self.timer is not None and not self.fired:
            return  # lingering: the timer decides
        self._stop_now()

    def _stop_now(self) -> None:
        self.timer, self.fired = None, False
        _say("stopping", f"{self.pending}: KeyboardInterrupt")
        raise KeyboardInterrupt

    def _fire(self) -> None:
        self.fired = True
        _thread.interrupt_main(signal.SIGINT)  # runs _on_signal in the main thread

    def begin(self, what: str) -> float:
        if self.timer is not None:
            self.timer.cancel()
            self.timer, self.fired = None, False
        self.section = what
        _say("busy", what)
        if self.pending:
            self.links += 1
            _say("deferred", f"{self.pending} while {what} (it follows the last one); the stop takes effect when "
                             "that is complete")
        return time.monotonic()

    def end(self, what: str, started: float, failed: bool = False, final_checkpoint: bool = False,
            chain: bool = True) -> None:
        """The section is over: say so; a pending stop then holds (the last epoch is done), lingers (a save:
        the epoch end's next section may follow, CHAIN at most) or takes effect now (a KeyboardInterrupt)."""
        self.section = None
        _say("done", f"{what} ({time.monotonic() - started:.2f} s)")
        if final_checkpoint and self.holding:
            self.holding = False
            if self.pending:
                _say("done", f"the run is complete; {self.pending} was held until now and the trainer ends by itself")
                self.pending = None
            return
        if not self.pending or failed:
            return
        if self.holding:
            _say("busy", f"holding the stop ({self.pending}) until the final state and checkpoint are saved")
            return
        if not chain or self.links >= CHAIN:
            self._stop_now()
        self.timer = threading.Timer(self.linger, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def guard(self, describe, function, final_checkpoint: bool = False):
        """`function` as one section named by `describe(*args, **kwargs)`."""

        @functools.wraps(function)
        def guarded(*args, **kwargs):
            what = describe(*args, **kwargs)
            started = self.begin(what)
            try:
                result = function(*args, **kwargs)
            except BaseException:
                self.end(what, started, failed=True)
                raise
            self.end(what, started, final_checkpoint=final_checkpoint)
            return result

        return guarded


def _sampling_label(args: tuple) -> str:
    """sd-scripts' sample_images(accelerator, args, epoch, steps, ...)."""
    epoch = args[2] if len(args) > 2 else None
    steps = args[3] if len(args) > 3 else None
    if epoch is not None:
        return "drawing the samples before training" if epoch == 0 else f"drawing the samples of epoch {epoch}"
    return "drawing the samples before training" if steps == 0 else f"drawing the samples at step {steps}"


def _guard_sampling(guard: StopGuard, train_util) -> None:
    """sample_images is called after every step and usually draws nothing: it is a section only from its first
    image on (sample_image_inference); a stop inside a call that drew nothing takes effect at its end."""
    sample_images, inference = train_util.sample_images, train_util.sample_image_inference
    state: dict[str, float | None] = {"started": None}

    @functools.wraps(sample_images)
    def guarded_sampling(*args, **kwargs):
        label = _sampling_label(args)
        guard.maybe, state["started"] = label, None
        last_epoch = args[2] is not None and args[2] == getattr(args[1], "max_train_epochs", None) \
            if len(args) > 2 else False
        try:
            result = sample_images(*args, **kwargs)
        except BaseException:
            guard.maybe = None
            if state["started"] is not None:
                guard.end(label, state["started"], failed=True)
            raise
        guard.maybe = None
        if state["started"] is None:
            if guard.pending and not guard.holding and guard.timer is None:
                guard._stop_now()
            return result
        if last_epoch:
            guard.holding = True
        guard.end(label, state["started"], chain=args[2] is None and bool(args[3]) if len(args) > 3 else False)
        return result

    @functools.wraps(inference)
    def guarded_inference(*args, **kwargs):
        if guard.maybe is not None and state["started"] is None:
            state["started"] = guard.begin(guard.maybe)
        return inference(*args, **kwargs)

    train_util.sample_images, train_util.sample_image_inference = guarded_sampling, guarded_inference


def _guard_network_saves(guard: StopGuard) -> None:
    """The checkpoint: `network.save_weights` of the network train_network.py builds from the module it imports
    (importlib.import_module(args.network_module)) with create_network / create_network_from_weights."""
    real_import = importlib.import_module

    def guard_network(network):
        save = getattr(network, "save_weights", None)
        if save is not None and not getattr(save, "bespoke_guarded", False):
            def describe(file, *rest, **kw) -> str:
                return f"saving checkpoint {os.path.relpath(str(file))}"

            def save_weights(*args, **kwargs):
                # after the last epoch (guard.holding) this is the final checkpoint: the held stop ends with it
                return guard.guard(describe, save, final_checkpoint=guard.holding)(*args, **kwargs)

            setattr(save_weights, "bespoke_guarded", True)  # noqa: B010 - a mark on a function
            network.save_weights = save_weights
        return network

    def wrap_factory(factory):
        @functools.wraps(factory)
        def create(*args, **kwargs):
            made = factory(*args, **kwargs)
            if isinstance(made, tuple) and made:
                return (guard_network(made[0]), *made[1:])
            return guard_network(made)
        return create

    def import_module(name, package=None):
        module = real_import(name, package)
        for factory in ("create_network", "create_network_from_weights"):
            made = vars(module).get(factory)  # never a lazy module's __getattr__ (transformers, diffusers)
            if callable(made) and not getattr(made, "bespoke_guarded", False):
                wrapped = wrap_factory(made)
                setattr(wrapped, "bespoke_guarded", True)  # noqa: B010 - a mark on a function
                setattr(module, factory, wrapped)
        return module

    importlib.import_module = import_module


def guard_training(guard: StopGuard) -> None:
    """Wrap what train_network.py saves and draws with: sd-scripts' state saves and sampling (library.train_util,
    looked up by name at each call) and the network's save_weights."""
    train_util = importlib.import_module("library.train_util")
    for name, describe in (
            ("save_and_remove_state_on_epoch_end", lambda args, acc, epoch, *r, **k: f"saving the state of epoch {epoch}"),
            ("save_and_remove_state_stepwise", lambda args, acc, step, *r, **k: f"saving the state at step {step}"),
            ("save_state_on_train_end", lambda *a, **k: "saving the final state")):
        function = getattr(train_util, name, None)
        if function is not None:
            setattr(train_util, name, guard.guard(describe, function))
    final_state = getattr(train_util, "save_state_on_train_end")  # noqa: B009 - a module of the trainer's

    @functools.wraps(final_state)
    def holding_final_state(*args, **kwargs):
        guard.holding = True  # from here on a stop waits for the final checkpoint
        return final_state(*args, **kwargs)

    setattr(train_util, "save_state_on_train_end", holding_final_state)  # noqa: B010
    _guard_sampling(guard, train_util)
    _guard_network_saves(guard)


def _probe():
    """probe.py, loaded from beside this file (this folder is not left on sys.path: see gate)."""
    spec = importlib.util.spec_from_file_location("bespoke_preflight_probe",
                                                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "probe.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write_report(path: str, out: dict) -> None:
    """The gate's answer, written whole (a reader never sees half of it)."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(out, handle)
    os.replace(partial, path)


def check(report: str, script: str, sd_scripts: str, args: list[str]) -> bool:
    """The probe's stages on `script args` in this folder, the answer written to `report`; False (and one line
    per problem on stderr) when the trainer would stop. Only the first process of a multi-GPU launch checks:
    the others start the trainer and wait for it at accelerate's first barrier."""
    if os.environ.get("LOCAL_RANK", "0") != "0":
        return True
    probe = _probe()
    here = os.getcwd()
    started = time.monotonic()
    out: dict = {"probe": 1, "gate": True, "python": sys.version.split()[0], "device": {}}
    modules = probe.import_or_error(sd_scripts, out)
    imported = time.monotonic()
    if modules is not None:
        kind = "gen" if os.path.basename(script) == "gen_img.py" else "train"
        checked = probe.check_in_child({"id": here, "cwd": here, "args": args, "kind": kind}, modules)
        out["device"] = checked.get("device") or {}
        out["jobs"] = [{"id": here, "stages": checked["stages"]}]
    out["seconds"] = {"import": round(imported - started, 3), "stages": round(time.monotonic() - imported, 3)}
    os.chdir(here)
    _write_report(report, out)
    stages = out.get("jobs", [{}])[0].get("stages", [])
    problems = [s for s in stages if s["status"] in (probe.FAIL, probe.HARDWARE)]
    if out.get("error") or problems:
        for line in [out["error"]] if out.get("error") else [f"{s['name']} {s['status']}: {s['message']}"
                                                               for s in problems]:
            print(f"bespoke preflight: the trainer would stop: {line}", file=sys.stderr, flush=True)
        return False
    print(f"bespoke preflight passed: {len(stages)} stages in {out['seconds']['stages']:.1f} s "
          f"(sd-scripts imported in {out['seconds']['import']:.1f} s, once for the check and the run)", flush=True)
    return True


def _ended(how: str) -> None:
    rank = os.environ.get("LOCAL_RANK")
    _say("ended", f"{how} (pid {os.getpid()}{f', rank {rank}' if rank else ''})")


def run_script(script: str, args: list[str], guard: StopGuard) -> int:
    """SCRIPT as `__main__` here; its end is said on stdout (`ended: exit 0`, `exit 1 (Error: …)`,
    `KeyboardInterrupt (SIGINT)`), then it ends as it would have (an uncaught KeyboardInterrupt re-raised)."""
    sys.argv = [script, *args]
    try:
        runpy.run_path(script, run_name="__main__")
    except BaseException:
        guard.close()
        _ended_by(sys.exc_info()[1], guard)
        raise
    guard.close()
    _ended("exit 0")
    return 0


def _ended_by(error, guard: StopGuard) -> None:
    if isinstance(error, KeyboardInterrupt):
        _ended(f"KeyboardInterrupt ({guard.pending or 'SIGINT'})")
    elif isinstance(error, SystemExit):
        _ended(f"exit {error.code if isinstance(error.code, int) else (0 if error.code is None else 1)}")
    else:
        text = (str(error).strip().splitlines() or [""])[0][:200]
        _ended(f"exit 1 ({type(error).__name__}: {text})")


def gate(report: str, script: str, args: list[str]) -> int:
    """Check `script args` (unless report is NO_CHECK), guard the stop, run the script here as `__main__`."""
    guard = StopGuard()
    guard.install()
    script = os.path.abspath(script)
    sd_scripts = os.path.dirname(script)
    sys.path[0] = sd_scripts  # what running the script directly puts first (not bespoke/kohya)
    if report != NO_CHECK and not check(report, script, sd_scripts, args):
        return 1
    if os.path.basename(script) == "train_network.py":
        guard_training(guard)
    return run_script(script, args, guard)


if __name__ == "__main__":
    sys.exit(gate(sys.argv[1], sys.argv[2], sys.argv[3:]))
