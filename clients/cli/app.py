"""The `trialplane` command."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from trialplane.server.cli import add_serve_command, run_serve

    parser = argparse.ArgumentParser(prog="trialplane", description="Control plane for machine-learning training trials")
    sub = parser.add_subparsers(dest="command", required=True)
    add_serve_command(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return run_serve(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
