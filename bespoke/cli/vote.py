"""`bespoke vote RUN...`: blind A/B votes on a local page (127.0.0.1), and the ranking they give (--report)."""

from __future__ import annotations

import getpass
import os
from collections import Counter
from pathlib import Path

import click

from bespoke.cli.common import chosen_profile, get_settings
from bespoke.cli.review import print_score_checks, review_argument


def login_name() -> str:
    """The default --voter: the login name (a container without a user entry has none)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "me"


def ssh_line(port: int) -> str:
    """The exact `ssh -L` a laptop runs to reach this box's page (from SSH_CONNECTION when we came in by ssh)."""
    user = login_name()
    parts = os.environ.get("SSH_CONNECTION", "").split()
    host, ssh_port = (parts[2], parts[3]) if len(parts) == 4 else ("<this box's address>", "22")
    port_flag = "" if ssh_port == "22" else f" -p {ssh_port}"
    return f"ssh -N -L {port}:127.0.0.1:{port}{port_flag} {user}@{host}"


def _has_browser() -> bool:
    if os.environ.get("SSH_CONNECTION"):
        return False
    return os.name == "nt" or os.uname().sysname == "Darwin" or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def render_rankings(rankings, out) -> None:
    """Each ranking as a table (strongest first) with its head-to-head lines and the recommendation."""
    from rich.markup import escape
    from rich.table import Table

    for ranking in rankings:
        what = "epoch" if ranking.kind == "epochs" else "run"
        table = Table(title=f"{escape(ranking.title)}: {what}s by the votes ({ranking.votes} votes)",
                      title_justify="left")
        for name in ("rank", what, "strength vs the leader", "leader better", "votes", "score"):
            table.add_column(name, justify="right")
        for i, row in enumerate(ranking.rows, 1):
            gap = "leader" if row.leader_better is None else f"{row.behind:+.2f} ({row.low:+.2f} … {row.high:+.2f})"
            better = "" if row.leader_better is None else (
                f"{pct(row.leader_better[0])} ({pct(row.leader_better[1])}–{pct(row.leader_better[2])})")
            table.add_row(str(i), escape(row.name), gap, better, str(row.votes),
                          "-" if row.score is None else f"{row.score:.3f}")
        if ranking.rows:
            out.print(table)
        for line in ranking.lines:
            out.print(f"  {escape(line)}", soft_wrap=True)
        out.print(f"  [bold]→ {escape(ranking.verdict)}[/]", soft_wrap=True)
    out.print("[dim]Bradley–Terry strengths with 95 % intervals; 'leader better' = the chance the leader would "
              "be preferred; 'same' counts half to each side, 'neither usable' against both (README: Voting)[/]",
              soft_wrap=True)


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def _serve(session, port: int, open_browser: bool) -> None:
    import time
    import webbrowser

    from rich.markup import escape

    from bespoke.console import console, out
    from bespoke.review.vote_server import VoteServer

    server = VoteServer(session, port)
    out.print(f"[bold]vote:[/] {server.url}", soft_wrap=True)
    console.print(f"votes go to {escape(str(session.votes.path))} (voter {escape(session.voter)}); "
                  f"{len(session.chooser.pairs)} pairs", soft_wrap=True)
    console.print(f"from another machine: {ssh_line(server.port)}  then open {server.url}", soft_wrap=True)
    console.print("Ctrl-C stops the page (every vote is already saved)", soft_wrap=True)
    server.start()
    if open_browser and _has_browser():
        webbrowser.open(server.url)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def _report(request, voter: str | None, profile) -> None:
    """--report: who voted, the rankings, and the score (under `profile`) against the votes of each run."""
    from rich.markup import escape

    from bespoke.console import console, out
    from bespoke.review.votes import votes_of
    from bespoke.review.voting import gather_votes, load_sources, rankings, votes_files

    where = ", ".join(str(p) for p in votes_files(request) if p.exists()) or str(votes_files(request)[0])
    read = gather_votes(request)
    counts = Counter(v.voter for v in votes_of(read.records))
    skipped = f"; {read.skipped} unreadable line(s) skipped" if read.skipped else ""
    by = ", ".join(f"{escape(name)} {n}" for name, n in sorted(counts.items())) or "nobody yet"
    alone = f"; the ranking from {escape(voter)}'s votes alone" if voter else ""
    console.print(f"votes: {escape(str(where))} (votes in effect: {by}{skipped}){alone}", soft_wrap=True)
    sources = load_sources(request)
    render_rankings(rankings(sources, read, voter), out)
    print_score_checks(sources, request, profile, out)


def render_calibration(result, out) -> None:
    """The calibrated weights beside the defaults, and each one's agreement with the votes."""
    from rich.table import Table

    table = Table(title=f"the score's weights fitted to {result.votes} votes", title_justify="left")
    for name in ("term", "default", "calibrated"):
        table.add_column(name, justify="right")
    for term in result.terms:
        table.add_row(term, f"{result.defaults[term]:.2f}", f"{result.weights[term]:.2f}")
    out.print(table)
    if result.before is not None:
        out.print(f"default weights: the score agrees with {result.before.text()}", soft_wrap=True)
    if result.after is not None:
        out.print(f"calibrated weights: it agrees with {result.after.text()} (each vote scored by weights "
                  f"fitted without it: 5-fold cross-validation)", soft_wrap=True)


def _calibrate(request, voter: str | None, name: str, root: Path) -> None:
    """--calibrate: fit the weights to the votes, show them beside the defaults, save them as a profile."""
    from rich.markup import escape

    from bespoke.clock import now_iso
    from bespoke.console import out
    from bespoke.errors import UsageError
    from bespoke.review.calibration import MIN_VOTES
    from bespoke.review.profiles import Profile, check_name, profiles_path, save_profile
    from bespoke.review.voting import calibrate_votes, gather_votes, load_sources, votes_files

    check_name(name)
    files = [p for p in votes_files(request) if p.exists()]
    result = calibrate_votes(load_sources(request), gather_votes(request), voter)
    if result.after is None:
        where = ", ".join(map(str, files)) or str(votes_files(request)[0])
        raise UsageError(f"--calibrate: {result.votes} usable votes between epochs of a run in {where} "
                         f"(at least {MIN_VOTES}: vote more with `bespoke vote RUN`)")
    render_calibration(result, out)
    if result.before is not None and result.after.share < result.before.share:
        out.print("not saved: the calibrated weights agree less with votes they were not fitted to than the "
                  "defaults do (these votes ask for an order no weighting of the terms gives; vote more, or "
                  "keep the defaults)", soft_wrap=True)
        return
    profile = Profile(name, result.weights, now_iso(), result.votes, tuple(map(str, files)),
                      round(result.before.share, 4) if result.before else None, round(result.after.share, 4))
    previous = save_profile(root, profile)
    replaced = " (replacing the earlier one)" if previous else ""
    out.print(f"saved as score profile {escape(name)} in {escape(str(profiles_path(root)))}{replaced}; "
              f"the score uses it with `bespoke process RUN --profile {escape(name)}` or score_profile = "
              f"\"{escape(name)}\" in bespoke.toml", soft_wrap=True)


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--epochs", help="Epochs to compare: all, best (each run's best), or e.g. 5,8,10 or 3-10 "
              "(default: all for one run, best for several).")
@click.option("--voter", help="Your name in the votes file (default: your login name); several voters' votes "
              "merge (with --report or --calibrate: only this voter's votes).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Folder of the votes file (default: the folder `bespoke review` writes for the same runs).")
@click.option("--report", "show_report", is_flag=True, help="Print the ranking the votes give and how the score "
              "agrees with them; serve nothing.")
@click.option("--calibrate", is_flag=True, help="Fit the score's term weights to the votes, show them beside "
              "the defaults and save them as a score profile; serve nothing.")
@click.option("--profile", "profile_name", default=None,
              help="With --calibrate: the name of the score profile to save (default: calibrated); with "
              "--report: the profile whose score is checked against the votes (default: score_profile in "
              "bespoke.toml, else the stated weights).")
@click.option("--no-browser", is_flag=True, help="Do not open a browser (the address is printed either way).")
@click.option("--no-process", is_flag=True, help="Use existing reports as they are; never run `process` first.")
@click.pass_context
def vote(ctx, runs, epochs, voter, port, out_dir, show_report, calibrate, profile_name, no_browser, no_process):
    """Blind A/B votes: a page on 127.0.0.1 shows two candidates of the same prompt and seed from two epochs
    (or two runs), sides drawn at random, and keeps your answers in the votes file (README: Voting).

    RUN is a run folder, run id, unique prefix, or a folder of samples; give several to compare runs."""
    from bespoke.review.voting import VoteRequest, open_session

    settings = get_settings(ctx)
    paths = tuple(review_argument(ctx, arg).resolve() for arg in runs)
    profile = None if calibrate else chosen_profile(ctx, profile_name)
    request = VoteRequest(paths, epochs, voter or login_name(), Path(out_dir) if out_dir else None,
                          settings.outputs_dir, not no_process, profile)
    if calibrate:
        _calibrate(request, voter, profile_name or "calibrated", settings.project_root)
    elif show_report:
        _report(request, voter, profile)
    else:
        _serve(open_session(request), port, not no_browser)
