"""A search driven from one script, Optuna's ask and tell over trialplane:
the server's TPE minimises the Branin function with several workers at once.

    python examples/ask_and_tell.py --trials 60 --workers 4

Each worker asks for a trial already RUNNING (SuggestTrials with start and a
client_id of its own, so a retried ask returns the same trial), evaluates
Branin at its point and ends it with CompleteTrial, which stores the value
as the trial's validation and completes it in one call. The study is made
(or found, by --study) first; the best trial is printed at the end. The
server is $TRIALPLANE_ADDRESS, else 127.0.0.1:50051.
"""

import argparse
import math
import threading
from concurrent.futures import ThreadPoolExecutor

import trialplane.client as tp
from trialplane.client import NotFound

BRANIN_OPTIMUM = 0.397887


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def study_of(client: tp.Client, name: str, budget: int) -> int:
    try:
        return client.studies.get(name).id
    except NotFound:
        pass
    return client.studies.create({
        "name": name,
        "objective": {"metric_name": "branin", "type": "OBJECTIVE_TYPE_MINIMIZE"},
        "algorithm": {"name": "tpe"},
        "max_trials": budget,
        "parameters": [
            {"name": "x1", "type": "PARAMETER_TYPE_DOUBLE", "feasible_space": {"min": -5, "max": 10}},
            {"name": "x2", "type": "PARAMETER_TYPE_DOUBLE", "feasible_space": {"min": 0, "max": 15}},
        ],
    }).id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="branin-ask-and-tell")
    parser.add_argument("--trials", type=int, default=60, help="the study's max_trials")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()

    with tp.Client() as client:
        study_id = study_of(client, args.study, args.trials)
        lock = threading.Lock()
        told = []

        def worker(i: int) -> None:
            while True:
                answer = client.studies.suggest(study_id, client_id=f"{args.study}-worker-{i}", start=True)
                if not answer.trials:
                    # study_done, or every remaining trial is someone else's.
                    return
                trial = answer.trials[0]
                x1, x2 = (trial.hyperparameters[n].double_value for n in ("x1", "x2"))
                value = branin(x1, x2)
                client.trials.complete(trial.id, {"branin": value})
                with lock:
                    told.append(value)

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(worker, range(args.workers)))
        best = next(iter(client.trials.list(study_id, order_by="searcher_metric_value", page_size=1)))
        point = {n: round(best.hyperparameters[n].double_value, 4) for n in ("x1", "x2")}
        print(f"{len(told)} trials told; best: trial {best.id} at {point}, branin {best.searcher_metric_value:.6f}"
              f" (optimum {BRANIN_OPTIMUM})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
