"""The `trialplane` command.

`serve` is the server's own command (server/cli.py) and `agent` the sidecar
agent's (clients/agent); every other command talks to a server through the
SDK. The SDK and grpc are imported only when a
command runs, so `--help` is quick.

Exit status: 0 done; 1 the server answered with an error or could not be
reached; 2 a usage error (argparse's, a state name or file the command
cannot use). An error is one line on stderr: the status code, the reason,
and the message with the fields that were wrong.
"""

from __future__ import annotations

import argparse
import os
import sys

EPILOG = """\
output: tables by default; -o json prints JSON Lines, the protobuf JSON of
one item per line (as grpcurl spells it), also for show and for follows;
-o yaml that JSON as one YAML list (one mapping for show); -o csv a header
and a row per item with the table's columns.
exit status: 0 ok, 1 server error or server unreachable, 2 usage error.
environment: TRIALPLANE_ADDRESS (default 127.0.0.1:50051; for sync, the
server each journal names), TRIALPLANE_TOKEN, TRIALPLANE_TOKEN_FILE (a file
holding the token, such as the server's trialplane-admin.token), TRIALPLANE_TLS_CA,
TRIALPLANE_TLS_CERT, TRIALPLANE_TLS_KEY, TRIALPLANE_TLS=1."""

TRIAL_STATES_HELP = "only trials in this state (running, queued, completed ...); repeat for several"


def _global_options(parser: argparse.ArgumentParser, with_defaults: bool) -> None:
    """--address, --token, TLS and --output, taken before the command and after it.

    Only the top-level parser has defaults: a subcommand's copy is left out of
    the namespace unless given, so it never hides a value given earlier."""

    def default(value):
        return value if with_defaults else argparse.SUPPRESS

    parser.add_argument("--address", default=default(None),
                        help="server host:port (default: $TRIALPLANE_ADDRESS, else 127.0.0.1:50051)")
    parser.add_argument("--token", default=default(None), help="bearer token (default: $TRIALPLANE_TOKEN)")
    add_tls_options(parser, default)
    parser.add_argument("-o", "--output", choices=["table", "json", "yaml", "csv"], default=default("table"),
                        help="table; json: JSON Lines, one item per line; yaml; csv")


def add_tls_options(parser: argparse.ArgumentParser, default) -> None:
    """The client's TLS flags (the server's own are serve's --tls-*)."""
    parser.add_argument("--tls", dest="client_tls", action="store_true", default=default(False),
                        help="TLS with the system's root certificates (default: on when $TRIALPLANE_TLS=1 or a --tls-* is set)")
    parser.add_argument("--tls-ca", dest="client_tls_ca", metavar="PEM", default=default(None),
                        help="TLS, checking the server against these root certificates (default: $TRIALPLANE_TLS_CA)")
    parser.add_argument("--tls-cert", dest="client_tls_cert", metavar="PEM", default=default(None),
                        help="client certificate, for a server that requires one (default: $TRIALPLANE_TLS_CERT)")
    parser.add_argument("--tls-key", dest="client_tls_key", metavar="PEM", default=default(None),
                        help="the client certificate's key (default: $TRIALPLANE_TLS_KEY)")


def client_tls(args):
    """The TLS the flags ask for, each filled from its variable; None: plaintext."""
    from ..sdk import TLS

    return TLS.from_environment(getattr(args, "client_tls_ca", None), getattr(args, "client_tls_cert", None),
                                getattr(args, "client_tls_key", None), on=getattr(args, "client_tls", False))


def build_parser() -> argparse.ArgumentParser:
    from trialplane.server.cli import add_serve_command

    from ..agent.cli import add_agent_command
    from .views import add_view_commands

    parser = argparse.ArgumentParser(
        prog="trialplane", description="Control plane for machine-learning training trials",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _global_options(parser, with_defaults=True)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, with_defaults=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_command(sub)
    add_agent_command(sub)

    def command(group, name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        """A leaf command; handler names its function in commands.py, imported when it runs."""
        p = group.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    studies = sub.add_parser("studies", help="list, show, create, update and delete studies; suggest trials, stop, complete").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = command(studies, "list", "studies_list", "list studies")
    p.add_argument("--name", help="SQL ILIKE pattern on the name ('mnist-%%')")
    p.add_argument("--state", action="append", help="only studies in this state; repeat for several")
    p.add_argument("--tag", action="append", help="only studies with this tag; repeat for several")
    p.add_argument("--owner", help="only studies of this owner")
    p = command(studies, "show", "studies_show", "show one study and its search space")
    p.add_argument("study", help="id or name")
    p = command(studies, "create", "studies_create", "create a study from a YAML or JSON file")
    p.add_argument("-f", "--file", required=True,
                   help="the study in the proto3 JSON shape (as grpcurl takes it), as YAML or JSON")
    p = command(studies, "delete", "studies_delete", "delete a study")
    p.add_argument("study", help="id or name")
    p.add_argument("--force", action="store_true", help="also delete its trials and what they reported")

    trials = sub.add_parser("trials", help="list, show and steer trials").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = command(trials, "list", "trials_list", "list trials: state, steps, best objective value, running time")
    p.add_argument("--study", help="only trials of this study (id or name)")
    p.add_argument("--state", action="append", help=TRIAL_STATES_HELP)
    p.add_argument("--name", help="SQL ILIKE pattern on the name")
    p.add_argument("--tag", action="append", help="only trials with this tag; repeat for several")
    p.add_argument("--order-by", help="as ListTrials takes it: 'searcher_metric_value', 'metrics.validation.loss.min desc'")
    p = command(trials, "show", "trials_show", "show one trial with its metric summaries")
    p.add_argument("trial", type=int, help="trial id")
    for verb, text in [
        ("stop", "ask a trial to stop (SIGTERM, then SIGKILL after the grace period)"),
        ("kill", "stop a trial now"),
        ("pause", "pause a trial"),
        ("activate", "queue a paused trial again"),
        ("restart", "start a new run of a trial"),
    ]:
        p = command(trials, verb, "trials_transition", text)
        p.set_defaults(verb=verb)
        p.add_argument("trial", type=int, help="trial id")
        p.add_argument("--message", help="why, for the trial's event history")
        if verb == "stop":
            p.add_argument("--grace", type=float, help="seconds the trial gets to exit (server default: 600)")
    p = command(trials, "events", "trials_events", "a trial's history of state changes")
    p.add_argument("trial", type=int, help="trial id")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events until the trial ends")

    p = metrics = command(sub, "metrics", "metrics_show",
                "a trial's metrics: summaries, or with --name or --group the history, a row per step")
    p.add_argument("trial", type=int, help="trial id")
    p.add_argument("--name", action="append", help="a metric's name; repeat for several columns")
    p.add_argument("--group", help="the metrics' group (training, validation ...); found from --name when left out")
    p.add_argument("--plot", action="store_true",
                   help="draw the history as a chart (first, last, min and max of up to the chart's width buckets)")

    p = command(sub, "logs", "logs_show", "a trial's log lines")
    p.add_argument("trial", type=int, help="trial id")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the trial ends")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines (then follow, with --follow)")

    p = command(sub, "checkpoints", "checkpoints_list", "a trial's checkpoints")
    p.add_argument("trial", type=int, help="trial id")
    p = command(sub, "workers", "workers_list", "a trial's workers")
    p.add_argument("trial", type=int, help="trial id")

    tokens = sub.add_parser("tokens", help="make, list and revoke bearer tokens (admin)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    p = command(tokens, "create", "tokens_create", "make a token and print its secret (shown only once)")
    p.add_argument("name", help="what the token is for: a person, a CI job")
    p.add_argument("--scope", action="append", choices=["read", "write", "admin"],
                   help="read (default), write or admin; a higher one includes the lower")
    p.add_argument("--study", action="append", type=int, metavar="ID",
                   help="reach only this study; repeat for several (default: every study)")
    p.add_argument("--expires-in", metavar="DURATION", help="lifetime such as 30d, 12h, 15m (default: never)")
    p.add_argument("--service", action="store_true", help="a token for a program rather than a person")
    p = command(tokens, "list", "tokens_list", "list tokens (never their secrets)")
    p.add_argument("--all", action="store_true", help="also revoked, expired and trial-run tokens")
    p = command(tokens, "revoke", "tokens_revoke", "revoke a token, at once")
    p.add_argument("id", type=int, help="token id")
    command(tokens, "whoami", "tokens_whoami", "the token this command sends, as the server sees it")

    p = command(sub, "sync", "sync_journals",
                "send the metrics training processes left unsent in their journals (killed, or closed with the "
                "server down), then report how those runs ended")
    p.add_argument("path", nargs="?",
                   help="a journal file, or a directory searched for them (default: $TRIALPLANE_JOURNAL_DIR, "
                        "else ~/.cache/trialplane/journals)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to keep trying, in all (default: 60)")

    add_view_commands(sub, studies, trials, metrics, command)
    return parser


def _error_line(err, address: str) -> str:
    from ..sdk import Unavailable

    if isinstance(err, Unavailable) and not err.reason:
        return f"trialplane: cannot reach the server at {address}: {err.message}"
    return f"trialplane: {err}"


def _handler(name: str):
    """A handler named "function" (in commands.py) or "module:function"."""
    import importlib

    from . import commands

    module, _, function = name.rpartition(":")
    return getattr(importlib.import_module(f"{__package__}.{module}") if module else commands, function)


def _run(args) -> int:
    from ..sdk import Client, RetryPolicy, TrialplaneError
    from . import commands
    from .output import Printer

    # Someone at a terminal would rather hear of an unreachable server within
    # a second than wait out the SDK's longer default retries.
    retry = RetryPolicy(max_attempts=3, initial_backoff=0.2, max_backoff=1.0)
    try:
        client = Client(args.address, token=args.token, tls=client_tls(args) or False, retry=retry)
    except ValueError as err:
        print(f"trialplane: {err}", file=sys.stderr)
        return 2
    try:
        return _handler(args.handler)(client, args, Printer(args.output))
    except TrialplaneError as err:
        print(_error_line(err, client.address), file=sys.stderr)
        return 1
    except (commands.UsageError, ValueError) as err:
        print(f"trialplane: {err}", file=sys.stderr)
        return 2
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from trialplane.server.cli import run_serve

        return run_serve(args)
    if args.command == "agent":
        from ..agent.cli import run_agent

        return run_agent(args)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`); say nothing more on a closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
