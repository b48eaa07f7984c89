"""A stand-in for a training script: prints what a training prints, quickly,
and needs nothing from trialplane.

Each step prints a metric line with values in exponent notation (as Python
prints small floats: loss=1e-05), a progress bar redraws itself on stderr
with carriage returns (as tqdm does), one line goes to fd 2 through
os.write (as C or CUDA code writes it, past Python's sys.stderr), and the
script exits with --exit-code. SIGTERM makes it say so and exit 0.

    trialplane agent --trial 1 -- python examples/train.py --steps 5
"""

import argparse
import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="metric lines to print (default 5)")
    parser.add_argument("--step-seconds", type=float, default=0.0, help="pause after each step")
    parser.add_argument("--exit-code", type=int, default=0, help="the exit code (default 0)")
    parser.add_argument("--succeed-from-run", type=int, metavar="RUN",
                        help="exit 0 from this run on (TRIALPLANE_TRIAL_RUN_ID), --exit-code before it")
    parser.add_argument("--wait-for", type=Path, metavar="FILE", help="before exiting, wait until FILE exists")
    parser.add_argument("--ignore-sigterm", action="store_true", help="carry on after SIGTERM")
    args = parser.parse_args()

    def on_sigterm(signum, frame):
        if args.ignore_sigterm:
            print("SIGTERM received; ignoring it", flush=True)
            return
        print("SIGTERM received; exiting", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    run = int(os.environ.get("TRIALPLANE_TRIAL_RUN_ID", "0"))
    print(f"trial {os.environ.get('TRIALPLANE_TRIAL_ID', '-')} run {run}"
          f" agent {os.environ.get('TRIALPLANE_AGENT', '0')}")
    for step in range(1, args.steps + 1):
        loss = 10.0 ** -(step + 4)
        print(f"step {step} loss={loss!r} scale=-3.2E+4")
        time.sleep(args.step_seconds)
    for percent in range(10, 101, 10):
        sys.stderr.write(f"\rprogress {percent:3d}%")
        sys.stderr.flush()
    sys.stderr.write("\n")
    os.write(2, b"written to fd 2 by os.write\n")

    code = args.exit_code
    if args.succeed_from_run is not None and run >= args.succeed_from_run:
        code = 0
    if args.wait_for is not None:
        print(f"waiting for {args.wait_for}", flush=True)
        while not args.wait_for.exists():
            time.sleep(0.05)
    if code:
        print(f"ERROR: failing on purpose with exit code {code}", file=sys.stderr)
    print(f"done with exit code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
