"""`bespoke vote RUN...`: blind A/B votes on a local page (127.0.0.1), and the ranking they give (--report)."""

from __future__ import annotations

import getpass
import os
from collections import Counter
from pathlib import Path

import click

from bespoke.cli.common import get_settings
from bespoke.cli.review import review_argument


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


@click.command()
@click.argument("runs", nargs=-1, required=True)
@click.option("--epochs", help="Epochs to compare: all, best (each run's best), or e.g. 5,8,10 or 3-10 "
              "(default: all for one run, best for several).")
@click.option("--voter", help="Your name in the votes file (default: your login name); several voters' votes "
              "merge (with --report: only this voter's votes).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=str),
              help="Folder of the votes file (default: the folder `bespoke review` writes for the same runs).")
@click.option("--report", "show_report", is_flag=True, help="Print the ranking the votes give; serve nothing.")
@click.option("--no-browser", is_flag=True, help="Do not open a browser (the address is printed either way).")
@click.option("--no-process", is_flag=True, help="Use existing reports as they are; never run `process` first.")
@click.pass_context
def vote(ctx, runs, epochs, voter, port, out_dir, show_report, no_browser, no_process):
    """Blind A/B votes: a page on 127.0.0.1 shows two candidates of the same prompt and seed from two epochs
    (or two runs), sides drawn at random, and keeps your answers in the votes file (README: Voting).

    RUN is a run folder, run id, unique prefix, or a folder of samples; give several to compare runs."""
    from rich.markup import escape

    from bespoke.console import console, out
    from bespoke.review.votes import read_votes, votes_of
    from bespoke.review.voting import VoteRequest, load_sources, open_session, rankings, votes_path

    settings = get_settings(ctx)
    paths = tuple(review_argument(ctx, arg).resolve() for arg in runs)
    request = VoteRequest(paths, epochs, voter or login_name(), Path(out_dir) if out_dir else None,
                          settings.outputs_dir, not no_process)
    if show_report:
        where = votes_path(paths, request.out_dir, settings.outputs_dir)
        read = read_votes(where)
        counts = Counter(v.voter for v in votes_of(read.records))
        skipped = f"; {read.skipped} unreadable line(s) skipped" if read.skipped else ""
        by = ", ".join(f"{escape(name)} {n}" for name, n in sorted(counts.items())) or "nobody yet"
        alone = f"; the ranking from {escape(voter)}'s votes alone" if voter else ""
        console.print(f"votes: {escape(str(where))} (votes in effect: {by}{skipped}){alone}", soft_wrap=True)
        render_rankings(rankings(load_sources(request), read, voter), out)
        return
    _serve(open_session(request), port, not no_browser)
