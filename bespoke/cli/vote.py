"""`bespoke vote RUN...`: blind A/B votes on a local page (127.0.0.1), and the ranking they give (--report)."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click

from bespoke.cli.common import get_settings
from bespoke.cli.review import review_argument


def ssh_line(port: int) -> str:
    """The exact `ssh -L` a laptop runs to reach this box's page (from SSH_CONNECTION when we came in by ssh)."""
    user = getpass.getuser()
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
        what = "epochs" if ranking.kind == "epochs" else "runs"
        table = Table(title=f"{escape(ranking.title)}: {what} by your votes ({ranking.votes} votes)",
                      title_justify="left")
        for name in ("rank", what[:-1], "strength", "95 % interval", "votes", "score"):
            table.add_column(name, justify="right")
        for i, row in enumerate(ranking.rows, 1):
            table.add_row(str(i), escape(row.name), f"{row.theta:+.2f}", f"{row.low:+.2f} … {row.high:+.2f}",
                          str(row.votes), "-" if row.score is None else f"{row.score:.3f}")
        if ranking.rows:
            out.print(table)
        for line in ranking.lines:
            out.print(f"  {escape(line)}", soft_wrap=True)
        out.print(f"  [bold]→ {escape(ranking.verdict)}[/]", soft_wrap=True)
    out.print("[dim]strength: Bradley–Terry, 0 = the usable bar; ties count half to each side, "
              "'neither usable' counts against both (README: Voting)[/]", soft_wrap=True)


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
@click.option("--voter", help="Your name in the votes file (default: your login name); several voters' votes merge.")
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
    from bespoke.review.votes import read_votes
    from bespoke.review.voting import VoteRequest, load_sources, open_session, rankings, votes_path

    settings = get_settings(ctx)
    paths = tuple(review_argument(ctx, arg).resolve() for arg in runs)
    request = VoteRequest(paths, epochs, voter or getpass.getuser(), Path(out_dir) if out_dir else None,
                          settings.outputs_dir, not no_process)
    if show_report:
        where = votes_path(paths, request.out_dir, settings.outputs_dir)
        read = read_votes(where)
        voters = sorted({r.voter for r in read.records})
        skipped = f"; {read.skipped} unreadable line(s) skipped" if read.skipped else ""
        console.print(f"votes: {escape(str(where))} ({len(read.records)} records by "
                      f"{', '.join(voters) or 'nobody yet'}{skipped})", soft_wrap=True)
        render_rankings(rankings(load_sources(request), read), out)
        return
    _serve(open_session(request), port, not no_browser)
