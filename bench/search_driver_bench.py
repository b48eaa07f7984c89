"""SuggestTrials through a real `trialplane serve` process: its latency as a
study grows, and a driver loop of 8 workers beside Optuna's RDB storage on
SQLite in the same run. bench/search_bench.py times the algorithms in
process; this bench adds what the server and the transport cost.

Part 1, latency: one study per algorithm (random, quasirandom and tpe by
default; cmaes with --algorithms) over search_bench.py's space of four
parameters (a log DOUBLE, a linear DOUBLE, an INT, a CATEGORICAL), with 16
trials RUNNING throughout, grown to each size in --sizes. At a size N one
step is what a driver does when a trial ends: the oldest running trial
reports its objective (ReportMetrics, group "validation") and COMPLETED,
one SuggestTrials(count=1) is made and the new trial reports RUNNING; only
the SuggestTrials call is timed. --calls timed steps (after --warmup
untimed ones) run from N - calls/2 to N + calls/2 completed trials and give
that run's p50 and p99. The empty SuggestTrials handler (bench/support.py's
StudyService ceiling) is called once right after each timed call, under the
same load and with the caches as cold (calls back to back would time it
warmer than anything it is compared with), and each p50 row is followed by
its difference from that ceiling p50: the server's share. One SuggestTrials(count=100) per study and size is timed
after the steps.

Filling: between sizes each study gets SuggestTrials in batches of 100, one
AddEvents with every trial's objective and a COMPLETED report per trial
(straight from QUEUED, which the API allows; eight in flight); the fill
rate and each study's fill time are rows of their own. The tpe study is
filled by random search (UpdateStudy to random, then back to tpe before it
is timed; its first warm-up step rebuilds the designer), as its own batches
of 100 would take most of the bench; search_bench.py's histories are random
points too. The server reads again every trial of a study changed within
its clock slack (server/services/study_trials.py, 5 s) on each
SuggestTrials, so timing waits until the last fill is older than that
(--no-settle times right after the fill, to see what the re-read costs).
Last, the server is restarted on the same database and the first
SuggestTrials is timed, once on a 1-trial study (what the server's first
call costs) and then on each grown study (its designer rebuilt from every
trial).

Part 2, driver loop: 8 worker threads with a channel each share a budget of
--budget trials of a fresh study, in three loops. The worker loop repeats
SuggestTrials(count=1, client_id=its name), RUNNING, ReportMetrics of Branin
on two DOUBLEs, COMPLETED: what an agent-run trial goes through. The started
loop is the issue's (suggest one, report the objective, complete), with
the trial RUNNING from SuggestTrials(start): SuggestTrials, ReportMetrics,
COMPLETED. The ask loop repeats SuggestTrials(start) and CompleteTrial with
Branin's value, as Optuna's ask and tell.
trials/s from the first call to the last answer, for random and tpe, each
beside Optuna doing its loop in the same run: 8 threads of
study.ask()/study.tell() on one study with RDBStorage on a SQLite file
(RandomSampler, TPESampler with its defaults). The same 8 threads making
as many calls per trial to the empty handler give the transport's limit.
Per-call p50s inside the loop, repeated points and the best value found by
each at that budget are rows too (Branin's optimum is 0.397887). The
client threads share one interpreter and the machine's cores with the
server.

Every answer is checked (each suggestion a QUEUED trial inside the space,
every driver trial COMPLETED, the server's best value equal to the
client's); a failed check or call stops the bench with exit status 1 after
its servers are stopped.

Usage: .venv/bin/python bench/search_driver_bench.py [--runs N] [--sizes 100,1000,3000,10000]
           [--algorithms random,quasirandom,tpe,cmaes] [--calls N] [--warmup N] [--no-settle]
           [--budget N] [--skip-latency] [--skip-driver] [--postgres DSN]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from google.protobuf import field_mask_pb2
from search_bench import FUNCTIONS, SPEED_SPACE, branin, loss_of, optuna_distributions
from support import (
    QUIET,
    PostgresSchema,
    ServerProcess,
    Table,
    median,
    percentile,
    start_ceiling,
    start_trialplane,
)
from trialplane.server.domain.models import ParameterScale, ParameterSpec
from trialplane.server.services.study_trials import CLOCK_SLACK_US
from trialplane.v1 import metrics_pb2 as mp
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import (
    metrics_service_pb2_grpc,
    study_pb2,
    study_service_pb2_grpc,
    trial_pb2,
    trial_service_pb2_grpc,
)
from trialplane.v1 import study_service_pb2 as ss
from trialplane.v1 import trial_service_pb2 as ts

ALGORITHMS = ("random", "quasirandom", "tpe", "cmaes")
DEFAULT_ALGORITHMS = ("random", "quasirandom", "tpe")  # cmaes adds a fourth 10,000-trial fill
DRIVER_ALGORITHMS = ("random", "tpe")
RUNNING = 16
WORKERS = 8
FILL_BATCH = 100
# Studies whose fill is suggested by random search, their own algorithm set
# back before they are timed: tpe's own batches of 100 would take most of the
# bench (the count=100 rows show what one costs).
FILLED_BY_RANDOM = ("tpe",)
TIMEOUT = 60.0  # seconds any one call may take before the bench fails
BRANIN_SPACE, _, BRANIN_OPTIMUM = FUNCTIONS["branin"]
TARGETS = {("tpe", 3000): "target <= 10 ms", ("tpe", 10000): "target <= 30 ms",
           **{(a, n): "target <= 1 ms server-side" for a in ("random", "quasirandom") for n in (100, 1000, 3000, 10000)}}
S = trial_pb2


class BenchFailure(Exception):
    """An answer that is not what the API promises."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise BenchFailure(what)


# --- talking to trialplane --------------------------------------------------------------------------


class Stubs:
    def __init__(self, channel: grpc.Channel):
        self.studies = study_service_pb2_grpc.StudyServiceStub(channel)
        self.trials = trial_service_pb2_grpc.TrialServiceStub(channel)
        self.metrics = metrics_service_pb2_grpc.MetricsServiceStub(channel)


def space_proto(specs: Sequence[ParameterSpec]) -> list[study_pb2.ParameterSpec]:
    """search_bench's domain ParameterSpecs as the API takes them."""
    out = []
    for s in specs:
        fs = s.feasible_space
        feasible = study_pb2.FeasibleSpace(categories=fs.categories, values=fs.values)
        for name in ("min", "max", "step"):
            if getattr(fs, name) is not None:
                setattr(feasible, name, getattr(fs, name))
        scale = study_pb2.PARAMETER_SCALE_LOG if s.scale == ParameterScale.LOG else study_pb2.PARAMETER_SCALE_LINEAR
        out.append(study_pb2.ParameterSpec(name=s.name, type=study_pb2.ParameterType.Value(f"PARAMETER_TYPE_{s.type.value}"),
                                           feasible_space=feasible, scale=scale))
    return out


def algorithm_spec(name: str, seed: int) -> study_pb2.AlgorithmSpec:
    return study_pb2.AlgorithmSpec(name=name, settings=[study_pb2.AlgorithmSetting(name="random_state", value=str(seed))])


def create_study(stubs: Stubs, name: str, algorithm: str, seed: int, specs: Sequence[ParameterSpec]) -> int:
    study = study_pb2.Study(
        name=name,
        objective=study_pb2.Objective(metric_name="val_loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE),
        parameters=space_proto(specs),
        algorithm=algorithm_spec(algorithm, seed),
    )
    return stubs.studies.CreateStudy(ss.CreateStudyRequest(study=study), timeout=TIMEOUT).id


def set_algorithm(stubs: Stubs, study_id: int, algorithm: str, seed: int) -> None:
    stubs.studies.UpdateStudy(ss.UpdateStudyRequest(
        study=study_pb2.Study(id=study_id, algorithm=algorithm_spec(algorithm, seed)),
        update_mask=field_mask_pb2.FieldMask(paths=["algorithm"])), timeout=TIMEOUT)


def params_of(trial: trial_pb2.Trial) -> dict:
    return {name: getattr(v, v.WhichOneof("kind")) for name, v in trial.hyperparameters.items()}


def inside(params: dict, specs: Sequence[ParameterSpec]) -> bool:
    if set(params) != {s.name for s in specs}:
        return False
    for s in specs:
        fs, v = s.feasible_space, params[s.name]
        if fs.categories:
            if v not in fs.categories:
                return False
        elif not (fs.min <= v <= fs.max):
            return False
    return True


def suggest(stubs: Stubs, study_id: int, count: int, specs: Sequence[ParameterSpec], client_id: str = "",
            start: bool = False) -> list[trial_pb2.Trial]:
    got = stubs.studies.SuggestTrials(
        ss.SuggestTrialsRequest(study_id=study_id, count=count, client_id=client_id, start=start), timeout=TIMEOUT)
    check(len(got.trials) == count and not got.study_done,
          f"SuggestTrials(count={count}) on study {study_id} returned {len(got.trials)} trials, study_done={got.study_done}")
    expected = S.TRIAL_STATE_RUNNING if start else S.TRIAL_STATE_QUEUED
    for t in got.trials:
        check(t.state == expected and inside(params_of(t), specs),
              f"trial {t.id} came back {S.TrialState.Name(t.state)} with {params_of(t)}")
    return list(got.trials)


def report_state(stubs: Stubs, trial_id: int, state: int) -> None:
    stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial_id, state=state), timeout=TIMEOUT)


def validation(trial_id: int, value: float) -> ms.ReportMetricsRequest:
    metrics = mp.Metrics()
    metrics.avg_metrics.update({"val_loss": value})
    return ms.ReportMetricsRequest(metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=1, metrics=metrics),
                                   group="validation")


def complete(stubs: Stubs, trial_id: int, value: float) -> None:
    stubs.metrics.ReportMetrics(validation(trial_id, value), timeout=TIMEOUT)
    report_state(stubs, trial_id, S.TRIAL_STATE_COMPLETED)


def study_counts(stubs: Stubs, study_id: int) -> tuple[int, int]:
    """(COMPLETED trials, trials) of a study, read back page by page."""
    done = total = 0
    token = ""
    while True:
        page = stubs.trials.ListTrials(ts.ListTrialsRequest(study_id=study_id, page_size=1000, page_token=token),
                                       timeout=TIMEOUT)
        total += len(page.trials)
        done += sum(t.state == S.TRIAL_STATE_COMPLETED for t in page.trials)
        token = page.next_page_token
        if not token:
            return done, total


def server_best(stubs: Stubs, study_id: int) -> float:
    page = stubs.trials.ListTrials(ts.ListTrialsRequest(study_id=study_id, order_by="searcher_metric_value", page_size=1),
                                   timeout=TIMEOUT)
    check(len(page.trials) == 1, f"study {study_id} has no trial with a searcher metric")
    return page.trials[0].searcher_metric_value


# --- part 1: latency as a study grows ---------------------------------------------------------------


class GrowingStudy:
    """A study with RUNNING trials running, grown by fill() and step()."""

    def __init__(self, stubs: Stubs, pool: ThreadPoolExecutor, name: str, algorithm: str, seed: int):
        self.stubs, self.pool = stubs, pool
        self.algorithm, self.seed = algorithm, seed
        self.id = create_study(stubs, name, algorithm, seed, SPEED_SPACE)
        self.completed = 0
        self.filled_at = 0.0  # time.monotonic() of the fill's last write
        self.running: deque[trial_pb2.Trial] = deque()
        for t in suggest(stubs, self.id, RUNNING, SPEED_SPACE):
            report_state(stubs, t.id, S.TRIAL_STATE_RUNNING)
            self.running.append(t)

    def fill(self, target: int) -> tuple[int, float]:
        """Completes new trials until `target` are done; (trials added, seconds).
        A fill trial goes from QUEUED to COMPLETED in one report (a move the
        API allows), which halves the calls per trial."""
        begin = time.perf_counter()
        added = 0
        switch = self.algorithm in FILLED_BY_RANDOM and self.completed < target
        if switch:
            set_algorithm(self.stubs, self.id, "random", self.seed)
        while self.completed < target:
            trials = suggest(self.stubs, self.id, min(FILL_BATCH, target - self.completed), SPEED_SPACE)
            self._complete_all(trials)
            added += len(trials)
        if switch:
            set_algorithm(self.stubs, self.id, self.algorithm, self.seed)
        return added, time.perf_counter() - begin

    def _complete_all(self, trials: Sequence[trial_pb2.Trial]) -> None:
        answer = self.stubs.metrics.AddEvents(ms.AddEventsRequest(
            reports=[validation(t.id, loss_of(params_of(t))) for t in trials]), timeout=TIMEOUT)
        check(answer.added == len(trials), f"AddEvents stored {answer.added} of {len(trials)} reports")
        list(self.pool.map(lambda t: report_state(self.stubs, t.id, S.TRIAL_STATE_COMPLETED), trials))
        self.completed += len(trials)
        self.filled_at = time.monotonic()

    def batch(self) -> float:
        """Seconds of one SuggestTrials(count=FILL_BATCH); the trials are then completed."""
        begin = time.perf_counter()
        trials = suggest(self.stubs, self.id, FILL_BATCH, SPEED_SPACE)
        elapsed = time.perf_counter() - begin
        self._complete_all(trials)
        return elapsed

    def step(self) -> float:
        """The oldest running trial completes, one trial is suggested (timed) and starts running."""
        oldest = self.running.popleft()
        complete(self.stubs, oldest.id, loss_of(params_of(oldest)))
        self.completed += 1
        begin = time.perf_counter()
        (trial,) = suggest(self.stubs, self.id, 1, SPEED_SPACE)
        elapsed = time.perf_counter() - begin
        report_state(self.stubs, trial.id, S.TRIAL_STATE_RUNNING)
        self.running.append(trial)
        return elapsed


def time_ceiling(stub: study_service_pb2_grpc.StudyServiceStub, calls: int) -> list[float]:
    request = ss.SuggestTrialsRequest(study_id=1, count=1)
    samples = []
    for _ in range(calls):
        begin = time.perf_counter()
        stub.SuggestTrials(request, timeout=TIMEOUT)
        samples.append(time.perf_counter() - begin)
    return samples


def latency_rows(table: Table, args: argparse.Namespace) -> None:
    table.define("fill", "fill: completed trials added", "trials/s",
                 f"batches of {FILL_BATCH}: SuggestTrials, AddEvents, COMPLETED")
    for name in args.algorithms:
        table.define(f"{name}:fill", f"fill time of the {name} study", "s", f"to {max(args.sizes):,} done, all sizes")
    for n in args.sizes:
        table.define(f"ceiling@{n}", f"empty SuggestTrials handler p50 (at {n:,})", "ms", "the transport, same run")
        for name in args.algorithms:
            table.define(f"{name}@{n}:p50", f"{name} p50 at {n:,} done", "ms", TARGETS.get((name, n), ""))
            table.define(f"{name}@{n}:share", "  minus the ceiling's p50", "ms", "the server's share")
            table.define(f"{name}@{n}:p99", f"{name} p99 at {n:,} done", "ms")
        for name in args.algorithms:
            table.define(f"{name}@{n}:batch", f"{name} SuggestTrials(count={FILL_BATCH}) at {n + args.calls - args.calls // 2:,}", "ms",
                         "one call, after the timed ones")
    done = max(args.sizes) + args.calls - args.calls // 2 + FILL_BATCH
    table.define("imports", "first SuggestTrials after a restart", "ms", "a 1-trial study: the server's first call")
    for name in args.algorithms:
        table.define(f"{name}:cold", f"then {name}'s first SuggestTrials", "ms", f"at {done:,} done: designer rebuilt")


def settle(studies: Sequence[GrowingStudy]) -> None:
    """Waits until the newest fill write is older than the server's clock
    slack: each SuggestTrials reads again every trial of its study changed
    within that slack, which right after a fill is the fill itself."""
    wait = CLOCK_SLACK_US / 1e6 + 0.5 - (time.monotonic() - max(s.filled_at for s in studies))
    if wait > 0:
        time.sleep(wait)


def latency_run(table: Table, args: argparse.Namespace, run: int, db: str | Path, log: Path) -> None:
    server = start_trialplane(db, log, QUIET)
    ceiling = start_ceiling("StudyService", log.with_name("ceiling.log"))
    with grpc.insecure_channel(server.address) as channel, grpc.insecure_channel(ceiling.address) as ceiling_channel, \
            ThreadPoolExecutor(WORKERS) as pool:
        stubs = Stubs(channel)
        ceiling_stub = study_service_pb2_grpc.StudyServiceStub(ceiling_channel)
        time_ceiling(ceiling_stub, 20)
        first = create_study(stubs, f"latency-first-{run}", "random", run, SPEED_SPACE)
        suggest(stubs, first, 1, SPEED_SPACE)
        studies = {name: GrowingStudy(stubs, pool, f"latency-{name}-{run}", name, run) for name in args.algorithms}
        fill_seconds = dict.fromkeys(args.algorithms, 0.0)
        for n in args.sizes:
            for name, study in studies.items():
                added, seconds = study.fill(max(0, n - args.calls // 2 - args.warmup))
                fill_seconds[name] += seconds
                if added:
                    table.add("fill", added / seconds)
            if args.settle:
                settle(list(studies.values()))
            ceiling_p50s = []
            for name, study in studies.items():
                for _ in range(args.warmup):
                    study.step()
                samples, ceiling_samples = [], []
                for _ in range(args.calls):
                    samples.append(study.step())
                    # Right after it, under the same load and with caches as cold.
                    ceiling_samples.extend(time_ceiling(ceiling_stub, 1))
                ceiling_p50s.append(1000 * median(ceiling_samples))
                p50 = 1000 * median(samples)
                table.add(f"{name}@{n}:p50", p50)
                table.add(f"{name}@{n}:share", p50 - ceiling_p50s[-1])
                table.add(f"{name}@{n}:p99", 1000 * percentile(samples, 99))
            table.add(f"ceiling@{n}", median(ceiling_p50s))
            for name, study in studies.items():
                table.add(f"{name}@{n}:batch", 1000 * study.batch())
            print(f"  run {run + 1}: SuggestTrials at {n:,} done timed", flush=True)
        for name in args.algorithms:
            table.add(f"{name}:fill", fill_seconds[name])
    server.stop()
    ceiling.stop()
    server = start_trialplane(db, log, QUIET)
    with grpc.insecure_channel(server.address) as channel:
        stubs = Stubs(channel)
        begin = time.perf_counter()
        suggest(stubs, first, 1, SPEED_SPACE)
        table.add("imports", 1000 * (time.perf_counter() - begin))
        for name, study in studies.items():
            begin = time.perf_counter()
            suggest(stubs, study.id, 1, SPEED_SPACE)
            table.add(f"{name}:cold", 1000 * (time.perf_counter() - begin))
    server.stop()


# --- part 2: the driver loop ------------------------------------------------------------------------


class Budget:
    """Tickets for the workers: each trial takes one, and the loop ends when none are left."""

    def __init__(self, trials: int):
        self.left = trials
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def run_workers(worker: Callable[[int], None]) -> float:
    """Runs worker(0..WORKERS-1) on WORKERS threads released together; seconds until the last ends."""
    barrier = threading.Barrier(WORKERS + 1)

    def body(i: int) -> None:
        barrier.wait()
        worker(i)

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(body, i) for i in range(WORKERS)]
        barrier.wait()
        begin = time.perf_counter()
        for f in futures:
            f.result()
        return time.perf_counter() - begin


def one_trial(stubs: Stubs, study_id: int, client_id: str, loop: str, mine: dict[str, list[float]]) -> tuple[dict, float]:
    """One trial of a driver loop (see LOOPS), each call's seconds added to
    mine; the trial's hyperparameters and Branin value."""
    t0 = time.perf_counter()
    (trial,) = suggest(stubs, study_id, 1, BRANIN_SPACE, client_id=client_id, start=loop != "worker")
    t1 = time.perf_counter()
    mine["suggest"].append(t1 - t0)
    if loop == "worker":
        report_state(stubs, trial.id, S.TRIAL_STATE_RUNNING)
        t2 = time.perf_counter()
        mine["state"].append(t2 - t1)
        t1 = t2
    params = params_of(trial)
    value = branin(params)
    if loop == "ask":
        done = stubs.trials.CompleteTrial(ts.CompleteTrialRequest(
            id=trial.id, final_metrics={"val_loss": value}, steps_completed=1), timeout=TIMEOUT)
        mine["complete"].append(time.perf_counter() - t1)
        check(done.state == S.TRIAL_STATE_COMPLETED and done.searcher_metric_value == value,
              f"CompleteTrial of trial {trial.id} answered {S.TrialState.Name(done.state)}")
        return params, value
    stubs.metrics.ReportMetrics(validation(trial.id, value), timeout=TIMEOUT)
    t2 = time.perf_counter()
    report_state(stubs, trial.id, S.TRIAL_STATE_COMPLETED)
    mine["metrics"].append(t2 - t1)
    mine["state"].append(time.perf_counter() - t2)
    return params, value


def trialplane_driver(address: str, algorithm: str, budget: int, seed: int, run: int, loop: str = "worker") -> dict:
    """The loop over gRPC (a kind of LOOPS): trials/s, best value, per-call
    p50s, repeated points."""
    channels = [grpc.insecure_channel(address) for _ in range(WORKERS)]
    try:
        for ch in channels:
            grpc.channel_ready_future(ch).result(timeout=TIMEOUT)
        study_id = create_study(Stubs(channels[0]), f"driver-{algorithm}-{loop}-{run}", algorithm, seed, BRANIN_SPACE)
        tickets = Budget(budget)
        calls: dict[str, list[float]] = {"suggest": [], "state": [], "metrics": [], "complete": []}
        values: list[float] = []
        points: list[tuple] = []
        lock = threading.Lock()

        def worker(i: int) -> None:
            stubs = Stubs(channels[i])
            mine: dict[str, list[float]] = {k: [] for k in calls}
            my_values, my_points = [], []
            while tickets.take():
                params, value = one_trial(stubs, study_id, f"worker-{i}", loop, mine)
                my_values.append(value)
                my_points.append((params["x1"], params["x2"]))
            with lock:
                for k, v in mine.items():
                    calls[k].extend(v)
                values.extend(my_values)
                points.extend(my_points)

        seconds = run_workers(worker)
        stubs = Stubs(channels[0])
        done, total = study_counts(stubs, study_id)
        check(done == total == budget, f"driver study {study_id}: {done} COMPLETED of {total} trials, budget {budget}")
        best = min(values)
        check(math.isclose(server_best(stubs, study_id), best, rel_tol=1e-12),
              f"driver study {study_id}: server's best {server_best(stubs, study_id)} != the client's {best}")
        return {"rate": budget / seconds, "best": best, "repeats": len(points) - len(set(points)),
                **{k: 1000 * median(v) for k, v in calls.items() if v}}
    finally:
        for ch in channels:
            ch.close()


def ceiling_driver(address: str, budget: int, calls: int = 4) -> float:
    """trials/s of the same threads making `calls` calls per trial to the empty handler."""
    channels = [grpc.insecure_channel(address) for _ in range(WORKERS)]
    try:
        tickets = Budget(budget)
        request = ss.SuggestTrialsRequest(study_id=1, count=1, client_id="worker")

        def worker(i: int) -> None:
            stub = study_service_pb2_grpc.StudyServiceStub(channels[i])
            while tickets.take():
                for _ in range(calls):
                    stub.SuggestTrials(request, timeout=TIMEOUT)

        return budget / run_workers(worker)
    finally:
        for ch in channels:
            ch.close()


def optuna_driver(tmp: Path, sampler_name: str, budget: int, seed: int, run: int) -> dict:
    """The same loop with Optuna: 8 threads of ask/tell on RDBStorage over one SQLite file."""
    import optuna

    path = tmp / f"optuna-{sampler_name}-{run}.db"
    sampler = optuna.samplers.RandomSampler(seed=seed) if sampler_name == "random" else optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(storage=f"sqlite:///{path}", sampler=sampler, direction="minimize",
                                study_name=f"driver-{sampler_name}-{run}")
    dists = optuna_distributions(BRANIN_SPACE)
    tickets = Budget(budget)

    def worker(i: int) -> None:
        while tickets.take():
            trial = study.ask(dists)
            study.tell(trial, branin(trial.params))

    seconds = run_workers(worker)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    check(done == budget, f"Optuna {sampler_name}: {done} COMPLETE trials of {budget}")
    return {"rate": budget / seconds, "best": study.best_value}


# The loops: (kind, calls per trial, what a trial's calls are). "worker" is
# an agent's trial (it reports RUNNING itself); "started" the loop,
# suggest one, report the objective, complete, with the trial started by
# SuggestTrials; "ask" Optuna's ask and tell.
LOOPS = (("worker", 4, "SuggestTrials, RUNNING, ReportMetrics, COMPLETED"),
         ("started", 3, "SuggestTrials(start), ReportMetrics, COMPLETED"),
         ("ask", 2, "SuggestTrials(start), CompleteTrial"))
CALL_ROWS = {"suggest": "SuggestTrials p50", "state": "ReportTrialState p50", "metrics": "ReportMetrics p50",
             "complete": "CompleteTrial p50"}
LOOP_CALLS = {"worker": ("suggest", "state", "metrics"), "started": ("suggest", "metrics", "state"),
              "ask": ("suggest", "complete")}


def driver_rows(table: Table, args: argparse.Namespace) -> None:
    loop = f"{WORKERS} threads, {args.budget} trials"
    for kind, calls, what in LOOPS:
        table.define(f"ceiling-{kind}", f"empty handler, {calls} calls per trial", "trials/s",
                     f"{loop}: the transport's limit")
        for name in DRIVER_ALGORITHMS:
            note = "target >= 300 trials/s" if name == "random" else loop
            table.define(f"tp-{name}-{kind}", f"trialplane {name}, {kind} loop", "trials/s", f"{note}; {what}",
                         ratio="trialplane as % of Optuna")
            sampler = "RandomSampler" if name == "random" else "TPESampler"
            table.define(f"optuna-{name}-{kind}", f"Optuna {sampler}, RDB on SQLite", "trials/s",
                         "ask/tell, same threads", ceiling_of=f"tp-{name}-{kind}")
    for name in DRIVER_ALGORITHMS:
        for kind, _, _ in LOOPS:
            for call in LOOP_CALLS[kind]:
                table.define(f"tp-{name}-{kind}:{call}", f"{name} {kind} loop: {CALL_ROWS[call]}", "ms",
                             "per call, all workers")
            table.define(f"tp-{name}-{kind}:repeats", f"{name} {kind} loop: repeated points", "trials",
                         "suggested twice in one study")
    for name in DRIVER_ALGORITHMS:
        for kind, _, _ in LOOPS:
            table.define(f"tp-{name}-{kind}:best", f"best Branin value, trialplane {name}, {kind} loop", "value",
                         f"optimum {BRANIN_OPTIMUM}")
        table.define(f"optuna-{name}:best", f"best Branin value, Optuna {name}", "value")


def driver_run(table: Table, args: argparse.Namespace, run: int, db: str | Path, log: Path, tmp: Path) -> None:
    server = start_trialplane(db, log, QUIET)
    ceiling = start_ceiling("StudyService", log.with_name("ceiling.log"))
    for kind, calls, _ in LOOPS:
        table.add(f"ceiling-{kind}", ceiling_driver(ceiling.address, args.budget, calls))
    for name in DRIVER_ALGORITHMS:
        for kind, _, _ in LOOPS:
            got = trialplane_driver(server.address, name, args.budget, run, run, kind)
            table.add(f"tp-{name}-{kind}", got.pop("rate"))
            for what, value in got.items():
                table.add(f"tp-{name}-{kind}:{what}", value)
        theirs = optuna_driver(tmp, name, args.budget, run, run)
        # Optuna's ask/tell is one loop; it is the same-run reference of each.
        for kind, _, _ in LOOPS:
            table.add(f"optuna-{name}-{kind}", theirs["rate"])
        table.add(f"optuna-{name}:best", theirs["best"])
        print(f"  run {run + 1}: driver loop {name} done", flush=True)
    server.stop()
    ceiling.stop()


# --- main -------------------------------------------------------------------------------------------


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def names(text: str) -> list[str]:
    chosen = [x for x in text.split(",") if x]
    unknown = set(chosen) - set(ALGORITHMS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown algorithms {sorted(unknown)}; choose from {', '.join(ALGORITHMS)}")
    return chosen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs; tables show the median over them")
    parser.add_argument("--sizes", type=sizes, default=[100, 1000, 3000, 10000], help="completed trials, comma-separated")
    parser.add_argument("--algorithms", type=names, default=list(DEFAULT_ALGORITHMS),
                        help=f"algorithms timed in part 1, of {','.join(ALGORITHMS)}")
    parser.add_argument("--calls", type=int, default=60, help="timed SuggestTrials per size and algorithm")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    parser.add_argument("--no-settle", dest="settle", action="store_false",
                        help="time SuggestTrials right after each fill instead of once the fill is older than"
                             " the server's clock slack (every trial changed within it is read again)")
    parser.add_argument("--budget", type=int, default=400, help="trials per driver loop")
    parser.add_argument("--skip-latency", action="store_true", help="skip part 1")
    parser.add_argument("--skip-driver", action="store_true", help="skip part 2")
    parser.add_argument("--postgres", metavar="DSN", default="",
                        help="run trialplane on a fresh schema of this PostgreSQL database instead of SQLite"
                             " (Optuna stays on SQLite)")
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    latency, driver = Table(), Table()
    if not args.skip_latency:
        latency_rows(latency, args)
    if not args.skip_driver:
        driver_rows(driver, args)
    began = time.perf_counter()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "server.log"
        try:
            for run in range(args.runs):
                for part, skip in (("latency", args.skip_latency), ("driver", args.skip_driver)):
                    if skip:
                        continue
                    schema = PostgresSchema(args.postgres, f"bench_search_driver_{os.getpid()}") if args.postgres else None
                    try:
                        db = schema.url if schema else tmp / f"{part}-{run}.db"
                        if part == "latency":
                            latency_run(latency, args, run, db, log)
                        else:
                            driver_run(driver, args, run, db, log, tmp)
                    finally:
                        ServerProcess.stop_all()
                        if schema:
                            schema.drop()
        except Exception:
            traceback.print_exc()
            tail = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
            if tail:
                print("server log, last lines:\n" + "\n".join(tail))
            print("search_driver_bench: FAILED")
            return 1
        finally:
            ServerProcess.stop_all()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\nsearch_driver_bench: trialplane on {backend}, {platform.python_implementation()} {platform.python_version()},"
          f" optuna {optuna.__version__}, {os.cpu_count()} CPUs, load {load:.1f} at start,"
          f" {time.perf_counter() - began:.0f} s")
    if not args.skip_latency:
        print(f"\nSuggestTrials(count=1) over gRPC, {RUNNING} running, {args.calls} calls per size from "
              f"N - {args.calls // 2} to N + {args.calls // 2} done; median of {args.runs} runs")
        latency.print()
    if not args.skip_driver:
        print(f"\ndriver loop, {WORKERS} worker threads, {args.budget} trials per study, Branin; median of {args.runs} runs")
        driver.print()
    where = f" --postgres {args.postgres}" if args.postgres else ""
    print(f"\nreproduce with: .venv/bin/python bench/search_driver_bench.py --runs {args.runs}"
          f" --sizes {','.join(map(str, args.sizes))} --algorithms {','.join(args.algorithms)} --calls {args.calls}"
          f" --warmup {args.warmup}{'' if args.settle else ' --no-settle'} --budget {args.budget}{' --skip-latency' if args.skip_latency else ''}"
          f"{' --skip-driver' if args.skip_driver else ''}{where}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
