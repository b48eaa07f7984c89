"""`trialplane agent`: its flags, and turning them into runner.Options."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

DESCRIPTION = """\
Run a trial's training and report it to the server.

wrap mode:    trialplane agent --trial 7 -- python train.py --lr 0.01
  runs the command (again for each new run the server starts), with
  TRIALPLANE_ADDRESS, TRIALPLANE_TOKEN, TRIALPLANE_TRIAL_ID,
  TRIALPLANE_TRIAL_RUN_ID and TRIALPLANE_AGENT=1 in its environment (and
  TRIALPLANE_TLS* with the agent's TLS files, when it speaks TLS).
sidecar mode: trialplane agent --trial 7 --follow-log /logs/train.log --exit-marker /logs/exit
  follows a training that runs in another container, through its log file
  and its process id (--pid) or a file its wrapper writes the exit code to.

Both report STARTING, RUNNING and the end (exit 0: COMPLETED, else ERROR with
the last lines), register a worker with heartbeats, ship the output as log
lines and stop the training on StopTrial/KillTrial (SIGTERM, the grace
period, SIGKILL). The server being down never stops the training."""

EPILOG = """\
exit status: the training's (128 + N when killed by signal N); 125 when the
agent could not start it (server unreachable, trial unknown or ended), 126 or
127 when the command cannot be executed or is not found.
rank: --rank, else RANK, OMPI_COMM_WORLD_RANK, SLURM_PROCID or LOCAL_RANK, else 0."""


def add_agent_command(sub) -> None:
    p = sub.add_parser("agent", help="run a trial's training and report it (wrap or sidecar mode)",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    # Left out of the namespace unless given, so the same flags given before
    # `agent` are kept.
    p.add_argument("--address", default=argparse.SUPPRESS,
                   help="server host:port (default: $TRIALPLANE_ADDRESS, else 127.0.0.1:50051)")
    p.add_argument("--token", default=argparse.SUPPRESS, help="bearer token (default: $TRIALPLANE_TOKEN)")
    from ..cli.app import add_tls_options

    add_tls_options(p, lambda value: argparse.SUPPRESS)
    p.add_argument("--trial", type=int, required=True, metavar="ID", help="the trial to run")
    p.add_argument("--rank", type=int, help="this worker's rank (default: from the launcher's environment)")
    p.add_argument("--journal-dir", metavar="DIR", help="passed to the training as TRIALPLANE_JOURNAL_DIR")
    p.add_argument("--heartbeat-interval", type=float, default=30.0, metavar="SECONDS",
                   help="seconds between worker heartbeats (default 30; keep it well below the server's --heartbeat-timeout)")
    p.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                   help="seconds from SIGTERM to SIGKILL when the agent itself is stopped or the trial is paused or "
                        "restarted (default 30; StopTrial brings its own grace period)")
    p.add_argument("--final-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long the remaining log lines and the final state may take to reach the server once the "
                        "training ended (default 30); what did not is logged")
    p.add_argument("--connect-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the server at start (default 60)")
    p.add_argument("--max-queued-lines", type=int, default=100_000, metavar="N",
                   help="log lines kept in memory while the server is unreachable; older ones are dropped (default 100000)")
    p.add_argument("--system-metrics-interval", type=float, default=1.0, metavar="SECONDS",
                   help="seconds between readings of the training's CPU and memory (its whole process tree) and of "
                        "the GPUs through nvidia-ml-py when installed, sent as SYSTEM profiler series "
                        "(default 1; 0 turns them off; wrap mode)")
    p.add_argument("-q", "--quiet", action="store_true", help="only the agent's warnings and errors on stderr")
    side = p.add_argument_group("sidecar mode")
    side.add_argument("--follow-log", type=Path, metavar="FILE", help="the training's log file to follow")
    side.add_argument("--pid", type=int, help="the training's process id: it ended when the process is gone")
    side.add_argument("--exit-marker", type=Path, metavar="FILE",
                      help="the training ended when this file appears; it holds the exit code ('completed' is 0)")
    side.add_argument("--stream", default="stdout", help="the stream name of the followed lines (default stdout)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND ...", help="the training command (wrap mode)")
    p.set_defaults(handler="agent", agent_parser=p)


def run_agent(args: argparse.Namespace) -> int:
    from ..cli.app import client_tls
    from .runner import Options, run

    parser = args.agent_parser
    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if args.follow_log is None:
        if not command:
            parser.error("give the training command after --, or --follow-log FILE for sidecar mode")
        if args.pid is not None or args.exit_marker is not None:
            parser.error("--pid and --exit-marker go with --follow-log")
    else:
        if command:
            parser.error("--follow-log follows a training that runs elsewhere; give no command with it")
        if args.pid is None and args.exit_marker is None:
            parser.error("--follow-log needs --pid PID or --exit-marker FILE to know when the training ended")
    for name in ("heartbeat_interval", "grace", "final_timeout", "connect_timeout", "system_metrics_interval"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more")
    if args.heartbeat_interval == 0:
        parser.error("--heartbeat-interval must be more than 0")

    try:
        tls = client_tls(args)
    except ValueError as err:
        parser.error(str(err))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("trialplane agent: %(message)s"))
    logger = logging.getLogger("trialplane.agent")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    logger.propagate = False

    options = Options(
        trial_id=args.trial, command=command, address=args.address, token=args.token, tls=tls, rank=args.rank,
        journal_dir=args.journal_dir, follow_log=args.follow_log, pid=args.pid, exit_marker=args.exit_marker,
        stream=args.stream, heartbeat_interval=args.heartbeat_interval, grace=args.grace,
        final_timeout=args.final_timeout, connect_timeout=args.connect_timeout,
        max_queued_lines=args.max_queued_lines, system_metrics_interval=args.system_metrics_interval,
    )
    try:
        return run(options)
    finally:
        logger.removeHandler(handler)
