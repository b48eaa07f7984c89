"""Who may call what: the one table of every method of the API, and the
check of a principal against it.

Each method names the scope it needs and where its request says which
studies, trials, workers or checkpoints it touches. A token limited to some
studies reaches only those (a method that reaches every study, such as an
unfiltered list, is refused to it); a trial-run token makes only the
methods marked for it, on its own trial and run. A method missing from the
table is refused to everyone: tests walk the table against the services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain import principal as who
from ..domain.errors import PermissionDenied, Unauthenticated
from ..domain.tokens import ADMIN, READ, WRITE
from ..services.authority import Authority

OPEN = "open"            # no token needed
AUTHENTICATED = "token"  # any valid token

# What a request touches, from its fields.
NONE = "none"            # nothing stored: settings checks, WhoAmI
EVERY_STUDY = "every"    # reaches all studies: an unfiltered list, Katib


@dataclass(frozen=True)
class Targets:
    studies: tuple[int, ...] = ()
    trials: tuple[int, ...] = ()
    workers: tuple[int, ...] = ()
    checkpoints: tuple[str, ...] = ()
    # Run ids the request names itself (0: unnamed).
    runs: tuple[int, ...] = ()
    every_study: bool = False


EVERY = Targets(every_study=True)
NOTHING = Targets()


@dataclass(frozen=True)
class Rule:
    scope: str
    targets: Callable[[Any], Targets]
    trial_run: bool = False


def _nothing(_request) -> Targets:
    return NOTHING


def _every(_request) -> Targets:
    return EVERY


def study(get: Callable) -> Callable[[Any], Targets]:
    return lambda r: Targets(studies=(get(r),))


def trial(get: Callable, run: Callable | None = None) -> Callable[[Any], Targets]:
    if run is None:
        return lambda r: Targets(trials=(get(r),))
    return lambda r: Targets(trials=(get(r),), runs=(run(r),))


def worker(get: Callable) -> Callable[[Any], Targets]:
    return lambda r: Targets(workers=(get(r),))


def _listed_trials(get: Callable) -> Callable[[Any], Targets]:
    """A read of the trials a request lists; none listed reaches every trial."""
    return lambda r: Targets(trials=tuple(get(r))) if len(get(r)) else EVERY


def _trial_or_every(get: Callable) -> Callable[[Any], Targets]:
    return lambda r: Targets(trials=(get(r),)) if get(r) else EVERY


def _study_or_every(get: Callable) -> Callable[[Any], Targets]:
    return lambda r: Targets(studies=(get(r),)) if get(r) else EVERY


def _checkpoints_listed(r) -> Targets:
    if r.trial_id:
        return Targets(trials=(r.trial_id,), studies=(r.study_id,) if r.study_id else ())
    return Targets(studies=(r.study_id,)) if r.study_id else EVERY


def _events_batch(r) -> Targets:
    return Targets(
        trials=tuple({*(x.metrics.trial_id for x in r.reports), *(e.trial_id for e in r.events),
                      *(x.trial_id for x in r.logs)}),
        runs=tuple({x.metrics.trial_run_id for x in r.reports}),
    )


def _profiler_stream(message) -> Targets:
    request = message.request
    return Targets(trials=(request.batch.labels.trial_id,)) if request.HasField("batch") else NOTHING


def _create_trial(r) -> Targets:
    # A trial outside any study reaches no study: only unlimited tokens make one.
    return Targets(studies=(r.trial.study_id,)) if r.trial.study_id else EVERY


def checkpoints(get: Callable) -> Callable[[Any], Targets]:
    return lambda r: Targets(checkpoints=tuple(get(r)))


def _series(r) -> Targets:
    return Targets(trials=tuple({s.trial_id for s in r.series}))


S, T, W, M, C, P, L = (f"/trialplane.v1.{name}Service/" for name in
                       ("Study", "Trial", "Worker", "Metrics", "Checkpoint", "Profiler", "Log"))
K = "/api.v1.beta1."
TOKENS = "/trialplane.v1.TokenService/"

TABLE: dict[str, Rule] = {
    # Studies
    S + "CreateStudy": Rule(WRITE, _every),
    S + "GetStudy": Rule(READ, lambda r: Targets(studies=(r.id,)) if r.id else EVERY),
    S + "ListStudies": Rule(READ, _every),
    S + "UpdateStudy": Rule(WRITE, study(lambda r: r.study.id)),
    S + "DeleteStudy": Rule(WRITE, study(lambda r: r.id)),
    S + "SuggestTrials": Rule(WRITE, study(lambda r: r.study_id)),
    S + "CheckEarlyStopping": Rule(READ, study(lambda r: r.study_id)),
    S + "StopStudy": Rule(WRITE, study(lambda r: r.id)),
    S + "CompleteStudy": Rule(WRITE, study(lambda r: r.id)),
    S + "ValidateAlgorithmSettings": Rule(READ, _nothing),
    # Trials
    T + "CreateTrial": Rule(WRITE, _create_trial),
    T + "GetTrial": Rule(READ, trial(lambda r: r.id), trial_run=True),
    T + "ListTrials": Rule(READ, _study_or_every(lambda r: r.study_id)),
    T + "UpdateTrial": Rule(WRITE, trial(lambda r: r.trial.id)),
    T + "DeleteTrial": Rule(WRITE, trial(lambda r: r.id)),
    T + "StopTrial": Rule(WRITE, trial(lambda r: r.id)),
    T + "KillTrial": Rule(WRITE, trial(lambda r: r.id)),
    T + "PauseTrial": Rule(WRITE, trial(lambda r: r.id)),
    T + "ActivateTrial": Rule(WRITE, trial(lambda r: r.id)),
    T + "RestartTrial": Rule(WRITE, trial(lambda r: r.id)),
    T + "ReportTrialState": Rule(WRITE, trial(lambda r: r.id, lambda r: r.trial_run_id), trial_run=True),
    T + "ReportEarlyExit": Rule(WRITE, trial(lambda r: r.id, lambda r: r.trial_run_id), trial_run=True),
    T + "CompleteTrial": Rule(WRITE, trial(lambda r: r.id, lambda r: r.trial_run_id), trial_run=True),
    T + "ListTrialEvents": Rule(READ, trial(lambda r: r.trial_id), trial_run=True),
    T + "WatchTrialEvents": Rule(READ, trial(lambda r: r.trial_id), trial_run=True),
    # Workers
    W + "RegisterWorker": Rule(WRITE, trial(lambda r: r.worker.trial_id, lambda r: r.worker.trial_run_id),
                               trial_run=True),
    W + "GetWorker": Rule(READ, worker(lambda r: r.id)),
    W + "ListWorkers": Rule(READ, _trial_or_every(lambda r: r.trial_id)),
    W + "UpdateWorker": Rule(WRITE, worker(lambda r: r.worker.id)),
    W + "DeleteWorker": Rule(WRITE, worker(lambda r: r.id)),
    W + "HeartbeatWorker": Rule(WRITE, worker(lambda r: r.id), trial_run=True),
    W + "ReportWorkerState": Rule(WRITE, worker(lambda r: r.id), trial_run=True),
    W + "GetRendezvousInfo": Rule(READ, trial(lambda r: r.trial_id), trial_run=True),
    # Metrics
    M + "ReportMetrics": Rule(WRITE, trial(lambda r: r.metrics.trial_id, lambda r: r.metrics.trial_run_id),
                              trial_run=True),
    M + "AddEvents": Rule(WRITE, _events_batch, trial_run=True),
    M + "ReportMetricColumns": Rule(WRITE, trial(lambda r: r.trial_id, lambda r: r.trial_run_id), trial_run=True),
    M + "ListMetricNames": Rule(READ, _listed_trials(lambda r: r.trial_ids)),
    M + "GetMetricHistory": Rule(READ, _listed_trials(lambda r: r.trial_ids)),
    M + "GetLatestMetrics": Rule(READ, _listed_trials(lambda r: r.trial_ids)),
    M + "WatchMetrics": Rule(READ, trial(lambda r: r.trial_id)),
    M + "ListDebugEvents": Rule(READ, trial(lambda r: r.trial_id)),
    # Checkpoints
    C + "ReportCheckpoint": Rule(WRITE, trial(lambda r: r.checkpoint.trial_id, lambda r: r.checkpoint.trial_run_id),
                                 trial_run=True),
    C + "GetCheckpoint": Rule(READ, checkpoints(lambda r: [r.uuid])),
    C + "ListCheckpoints": Rule(READ, _checkpoints_listed),
    C + "UpdateCheckpoint": Rule(WRITE, checkpoints(lambda r: [r.checkpoint.uuid])),
    C + "DeleteCheckpoints": Rule(WRITE, checkpoints(lambda r: r.uuids)),
    C + "ApplyCheckpointRetention": Rule(WRITE, study(lambda r: r.study_id)),
    # Profiler
    P + "StreamProfilerMetrics": Rule(WRITE, _profiler_stream, trial_run=True),
    P + "ReportProfilerMetrics": Rule(WRITE, trial(lambda r: r.batch.labels.trial_id), trial_run=True),
    P + "ListProfilerSeries": Rule(READ, trial(lambda r: r.trial_id)),
    P + "GetProfilerSamples": Rule(READ, _series),
    P + "WatchProfilerSamples": Rule(READ, _series),
    # Logs
    L + "AddLogs": Rule(WRITE, lambda r: Targets(trials=tuple({x.trial_id for x in r.logs})), trial_run=True),
    L + "ListLogs": Rule(READ, trial(lambda r: r.trial_id)),
    L + "WatchLogs": Rule(READ, trial(lambda r: r.trial_id)),
    L + "DownloadLogs": Rule(READ, trial(lambda r: r.trial_id)),
    # Tokens
    TOKENS + "CreateToken": Rule(ADMIN, _every),
    TOKENS + "CreateTrialRunToken": Rule(WRITE, trial(lambda r: r.trial_id, lambda r: r.trial_run_id)),
    TOKENS + "ListTokens": Rule(ADMIN, _every),
    TOKENS + "RevokeToken": Rule(ADMIN, _every),
    TOKENS + "WhoAmI": Rule(AUTHENTICATED, _nothing, trial_run=True),
    # Katib's services name trials by Katib's names, across studies.
    K + "DBManager/ReportObservationLog": Rule(WRITE, _every),
    K + "DBManager/GetObservationLog": Rule(READ, _every),
    K + "DBManager/DeleteObservationLog": Rule(WRITE, _every),
    K + "Suggestion/GetSuggestions": Rule(WRITE, _every),
    K + "Suggestion/ValidateAlgorithmSettings": Rule(READ, _nothing),
    K + "EarlyStopping/GetEarlyStoppingRules": Rule(WRITE, _every),
    K + "EarlyStopping/SetTrialStatus": Rule(WRITE, _every),
    K + "EarlyStopping/ValidateEarlyStoppingSettings": Rule(READ, _nothing),
    # Operations
    "/grpc.health.v1.Health/Check": Rule(OPEN, _nothing),
    "/grpc.health.v1.Health/Watch": Rule(OPEN, _nothing),
    "/grpc.health.v1.Health/List": Rule(OPEN, _nothing),
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule(READ, _nothing),
}


# What a method missing from the table gets: refused to every principal.
DENY_ALL = Rule(scope="unlisted", targets=_every)


def _deny(method: str, principal: who.Principal, needed: str, because: str, **metadata) -> PermissionDenied:
    err = PermissionDenied(f"{principal.describe()} may not call {method.rsplit('/', 1)[-1]}: {because}")
    err.metadata.update({"method": method, "required_scope": needed, **{k: str(v) for k, v in metadata.items()}})
    return err


def scope_check(method: str, rule: Rule, principal: who.Principal) -> None:
    """What the method needs of any principal, before its request is read."""
    if rule is DENY_ALL:
        raise _deny(method, principal, ADMIN, "the method is not in the server's access table")
    if principal.kind == who.TRIAL_RUN:
        if not rule.trial_run:
            raise _deny(method, principal, "trial_run",
                        "a trial-run token makes only the reporting calls of its own trial")
        return
    if rule.scope not in (OPEN, AUTHENTICATED) and rule.scope not in principal.scopes:
        raise _deny(method, principal, rule.scope, f"it needs the {rule.scope} scope")


async def target_check(method: str, rule: Rule, principal: who.Principal, request, authority: Authority) -> None:
    """What the request touches, for a trial-run token or one limited to studies."""
    if principal.kind == who.TRIAL_RUN:
        await _own_trial(method, rule, principal, rule.targets(request), authority)
    elif principal.study_ids is not None:
        await _limited_studies(method, rule, principal, rule.targets(request), authority)


async def _own_trial(method, rule, principal, targets: Targets, authority: Authority) -> None:
    trials = set(targets.trials)
    for worker_id in targets.workers:
        trials.add(await authority.trial_of_worker(worker_id) or 0)
    foreign = sorted(t for t in trials if t != principal.trial_id)
    if targets.every_study or targets.studies or targets.checkpoints or foreign:
        raise _deny(method, principal, "trial_run", f"the token is for trial {principal.trial_id} only",
                    trial_id=foreign[0] if foreign else 0)
    other_runs = sorted(r for r in targets.runs if r and r != principal.run_id)
    if other_runs:
        raise _deny(method, principal, "trial_run",
                    f"the token is for run {principal.run_id} of trial {principal.trial_id}, not run {other_runs[0]}")
    await run_check(principal, authority)


async def run_check(principal: who.Principal, authority: Authority) -> None:
    """A trial-run token works while its run is the trial's current one and
    the trial has not finished."""
    facts = await authority.trial_facts(principal.trial_id or 0)
    if facts is None or facts.finished or facts.run_id != principal.run_id:
        raise Unauthenticated(f"the trial-run token's run {principal.run_id} of trial {principal.trial_id} has ended",
                              "run_ended")


async def _limited_studies(method, rule, principal, targets: Targets, authority: Authority) -> None:
    allowed = principal.study_ids or frozenset()
    if targets.every_study:
        raise _deny(method, principal, rule.scope,
                    f"the token reaches studies {sorted(allowed)} only; name one (study_id or trial ids)")
    studies = set(targets.studies)
    trials = set(targets.trials)
    for worker_id in targets.workers:
        trial_id = await authority.trial_of_worker(worker_id)
        if trial_id is not None:
            trials.add(trial_id)
    for uuid in targets.checkpoints:
        trial_id = await authority.trial_of_checkpoint(uuid)
        if trial_id is not None:
            trials.add(trial_id)
    for trial_id in trials:
        facts = await authority.trial_facts(trial_id)
        # An unknown trial reaches nothing: the method answers NOT_FOUND.
        if facts is not None:
            if not facts.study_id:
                raise _deny(method, principal, rule.scope, f"trial {trial_id} belongs to no study", trial_id=trial_id)
            studies.add(facts.study_id)
    outside = sorted(s for s in studies if s not in allowed)
    if outside:
        raise _deny(method, principal, rule.scope, f"the token does not reach study {outside[0]}", study_id=outside[0])
