"""A small training that reports through the SDK: linear regression by
minibatch SGD on synthetic data, in numpy.

    trialplane agent --trial 7 -- python examples/regression.py --steps 200

Each step logs the minibatch loss (group "training") and prints it; every
--eval-every steps, and at the end, the loss on held-out data is logged as
val_loss (group "validation", what a study's objective usually names). The
weights are saved as a checkpoint (.npz under --checkpoint-dir) at the end,
and reported with the file and its size. Asked to stop, by a StopTrial the
trial handle sees or by SIGTERM from the agent, it saves a checkpoint where
it is and exits 0. The learning rate and batch size come from the trial's
hyperparameters (lr, batch_size) when it has them.
"""

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np
import trialplane.client as tp


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--step-seconds", type=float, default=0.0, help="pause after each step")
    parser.add_argument("--checkpoint-dir", type=Path, default=Path("checkpoints"))
    args = parser.parse_args()

    run = tp.init()
    lr = float(run.hparams.get("lr", 0.05))
    batch_size = int(run.hparams.get("batch_size", 32))
    rng = np.random.default_rng(run.trial_id)
    true_w = rng.normal(size=8)
    x = rng.normal(size=(4096, 8))
    y = x @ true_w + 0.1 * rng.normal(size=len(x))
    x_train, y_train, x_val, y_val = x[:3584], y[:3584], x[3584:], y[3584:]
    w = np.zeros(8)

    asked_to_stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: asked_to_stop.append(signum))

    step = 0
    for step in range(1, args.steps + 1):
        pick = rng.integers(0, len(x_train), batch_size)
        error = x_train[pick] @ w - y_train[pick]
        w -= lr * x_train[pick].T @ error / batch_size
        loss = float(np.mean(error**2))
        run.log(step, {"loss": loss})
        print(f"step {step} loss={loss:.6g}", flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            run.log(step, {"val_loss": float(np.mean((x_val @ w - y_val) ** 2))}, group="validation")
        if asked_to_stop or run.should_stop():
            print(f"asked to stop at step {step}; saving a checkpoint", flush=True)
            break
        time.sleep(args.step_seconds)

    directory = args.checkpoint_dir / f"trial-{run.trial_id}-run-{run.run_id}"
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / f"step-{step}.npz", w=w)
    run.checkpoint(step, files=directory, storage_uri=directory.resolve().as_uri(), metadata={"lr": lr})
    result = run.close()
    print(f"done at step {step}; {result.points_sent} points sent", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
