"""Several `trialplane serve` processes on one PostgreSQL database, as replicas.

Each test starts its replicas on a schema of its own. They run whenever
TRIALPLANE_TEST_POSTGRES_DSN names a PostgreSQL server (.ci/run always does).
"""

from __future__ import annotations

import functools
import signal
import statistics
import subprocess
import threading
import time

import grpc
import psutil
import psycopg
import pytest
from google.protobuf import duration_pb2
from support import Client, ServerProcess, error_of, postgres, tool
from support.trials import S, new_trial
from support.trials import report as report_state
from trialplane.server.storage.postgres.announcements import lock_key
from trialplane.v1 import metrics_pb2 as mp
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import study_pb2, trial_pb2
from trialplane.v1 import study_service_pb2 as ss
from trialplane.v1 import trial_service_pb2 as ts

pytestmark = pytest.mark.skipif(not postgres.DSN, reason="needs TRIALPLANE_TEST_POSTGRES_DSN")


@pytest.fixture
def database(tmp_path):
    schema = postgres.schema_for(str(tmp_path / "replicas"))
    url = postgres.url_with_schema(schema)
    yield url
    postgres.drop_schema(schema)


@pytest.fixture
def replicas(database):
    """Starts replicas on the test's database; all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(*extra: str, auth: bool = False) -> tuple[ServerProcess, Client]:
        process = ServerProcess(database, *extra, auth=auth)
        started.append(process)
        return process, Client.connect(process.address)

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def point(trial_id: int, step: int, value: float, request_id: str = "") -> ms.ReportMetricsRequest:
    metrics = mp.Metrics()
    metrics.avg_metrics.update({"loss": value})
    return ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial_id, steps_completed=step, metrics=metrics), group="training",
        request_id=request_id)


def running_trial(client: Client, **fields) -> trial_pb2.Trial:
    trial = new_trial(client, **fields)
    report_state(client, trial.id, S.TRIAL_STATE_RUNNING)
    return trial


def test_a_watch_on_one_replica_sees_writes_through_another_at_once(replicas):
    _, a = replicas()
    _, b = replicas()
    trial = running_trial(a)
    follow = b.metrics.WatchMetrics(ms.WatchMetricsRequest(trial_id=trial.id), timeout=60)
    a.metrics.ReportMetrics(point(trial.id, 0, 1.0))
    assert [list(s.steps) for s in next(follow).series] == [[0]]
    delays = []
    for step in range(1, 8):
        sent = time.monotonic()
        a.metrics.ReportMetrics(point(trial.id, step, 1.0 / step))
        got = next(follow)
        delays.append(time.monotonic() - sent)
        assert [list(s.steps) for s in got.series] == [[step]]
    # Followers also poll every second; an announced change comes well before that.
    assert statistics.median(delays) < 0.5, delays
    report_state(a, trial.id, S.TRIAL_STATE_COMPLETED)
    assert list(follow) == []


def test_a_request_id_retried_on_another_replica_gets_the_first_answer(replicas):
    _, a = replicas()
    _, b = replicas()
    request = ts.CreateTrialRequest(trial=trial_pb2.Trial(name="once"), request_id="create-once")
    first = a.trials.CreateTrial(request)
    again = b.trials.CreateTrial(request)
    assert again.id == first.id and again.name == "once"
    other = ts.CreateTrialRequest(trial=trial_pb2.Trial(name="another"), request_id="create-once")
    err = error_of(b.trials.CreateTrial, other)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "REQUEST_ID_REUSED"
    assert len(a.trials.ListTrials(ts.ListTrialsRequest()).trials) == 1


def race(*calls) -> list[object]:
    """Runs the calls at once; each one's answer or RpcError."""
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except grpc.RpcError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_racing_transitions_on_two_replicas_have_one_winner_and_gapless_events(replicas):
    _, a = replicas()
    _, b = replicas()
    for round_ in range(5):
        trial = running_trial(a, name=f"race-{round_}")
        pause = ts.PauseTrialRequest(id=trial.id)
        kill = ts.KillTrialRequest(id=trial.id)
        results = race(functools.partial(a.trials.PauseTrial, pause), functools.partial(b.trials.KillTrial, kill))
        assert any(not isinstance(r, grpc.RpcError) for r in results), results
        for r in results:
            if isinstance(r, grpc.RpcError):
                assert r.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ABORTED), r
        events = b.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))


def _values(trial: trial_pb2.Trial) -> tuple:
    return tuple(sorted((name, v.WhichOneof("kind"), getattr(v, v.WhichOneof("kind")))
                        for name, v in trial.hyperparameters.items()))


def test_suggesters_on_two_replicas_hand_out_each_grid_point_once(replicas):
    """Katib's two suggestion replicas handed out one grid point twice
    (katib#68): here the study row is locked by the write that suggests, so
    replicas take turns and each knows every point handed out before it."""
    _, a = replicas()
    _, b = replicas()
    grid = study_pb2.Study(
        name="grid", objective=study_pb2.Objective(metric_name="loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE),
        algorithm=study_pb2.AlgorithmSpec(name="grid"),
        parameters=[study_pb2.ParameterSpec(name="layers", type=study_pb2.PARAMETER_TYPE_INT,
                                            feasible_space=study_pb2.FeasibleSpace(min=1, max=10)),
                    study_pb2.ParameterSpec(name="opt", type=study_pb2.PARAMETER_TYPE_CATEGORICAL,
                                            feasible_space=study_pb2.FeasibleSpace(categories=["sgd", "adam", "lamb"]))])
    study = a.studies.CreateStudy(ss.CreateStudyRequest(study=grid))
    handed: list[trial_pb2.Trial] = []
    lock = threading.Lock()

    def suggester(client: Client, name: str) -> None:
        while True:
            answer = client.studies.SuggestTrials(ss.SuggestTrialsRequest(study_id=study.id, client_id=name, start=True))
            for trial in answer.trials:
                client.trials.CompleteTrial(ts.CompleteTrialRequest(id=trial.id, final_metrics={"loss": 1.0}))
            with lock:
                handed.extend(answer.trials)
            if answer.study_done:
                return

    threads = [threading.Thread(target=suggester, args=((a, b)[i % 2], f"s{i}"), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    points = [_values(t) for t in handed]
    assert len(points) == 30 and len(set(points)) == 30
    assert sorted(int(t.name.rsplit("-", 1)[1]) for t in handed) == list(range(1, 31))
    done = b.studies.GetStudy(ss.GetStudyRequest(id=study.id))
    assert done.state == study_pb2.STUDY_STATE_COMPLETED and done.trial_count == 30


def test_the_last_two_trials_ending_at_once_on_two_replicas_complete_the_study(replicas):
    """Each ending counts the study's unfinished trials: unserialised, each
    would count the other as still running and the study would stay ACTIVE."""
    _, a = replicas()
    _, b = replicas()
    space = [study_pb2.ParameterSpec(name="x", type=study_pb2.PARAMETER_TYPE_DOUBLE,
                                     feasible_space=study_pb2.FeasibleSpace(min=0, max=1))]
    for round_ in range(10):
        study = a.studies.CreateStudy(ss.CreateStudyRequest(study=study_pb2.Study(
            name=f"budget-{round_}", max_trials=2, parameters=space,
            objective=study_pb2.Objective(metric_name="loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE))))
        first, second = a.studies.SuggestTrials(ss.SuggestTrialsRequest(study_id=study.id, count=2, start=True)).trials
        results = race(
            functools.partial(a.trials.CompleteTrial, ts.CompleteTrialRequest(id=first.id, final_metrics={"loss": 1.0})),
            functools.partial(b.trials.CompleteTrial, ts.CompleteTrialRequest(id=second.id, final_metrics={"loss": 2.0})))
        assert all(r.state == S.TRIAL_STATE_COMPLETED for r in results), results
        ended = b.studies.GetStudy(ss.GetStudyRequest(id=study.id))
        assert (ended.state, ended.state_message) == (study_pb2.STUDY_STATE_COMPLETED,
                                                      "max_trials reached: all 2 trials ended"), round_


def test_the_watchdog_runs_on_one_replica_and_moves_when_it_dies(replicas):
    first, a = replicas("--watchdog-interval", "0.2")
    _, b = replicas("--watchdog-interval", "0.2")
    limit = trial_pb2.StoppingCondition(max_runtime=duration_pb2.Duration(nanos=300_000_000))
    trial = running_trial(a, stopping_condition=limit)
    assert wait_for_state(b, trial.id, S.TRIAL_STATE_STOPPING_CANCELED)
    events = b.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events
    # Ended once, by whichever replica holds the watchdog's lease.
    assert [e.to_state for e in events].count(S.TRIAL_STATE_STOPPING_CANCELED) == 1

    # Whichever replica held the lease, the survivor must take the job over:
    # kill the first replica (holder or not) and check the second still sweeps.
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    later = running_trial(b, name="later", stopping_condition=limit)
    assert wait_for_state(b, later.id, S.TRIAL_STATE_STOPPING_CANCELED)


JOBS = ("watchdog", "retention")


def job_holders(database: str, processes: list[ServerProcess]) -> dict[str, list[int]]:
    """The pids of the replicas holding each job's advisory lock, found by
    the port of the lock's connection."""
    with psycopg.connect(database, autocommit=True) as conn:
        scope = conn.execute("SELECT current_database() || '.' || current_schema()").fetchone()[0]
        rows = conn.execute(
            "SELECT l.classid::bigint, l.objid::bigint, a.client_port FROM pg_locks l JOIN pg_stat_activity a"
            " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
        ).fetchall()
    jobs = {lock_key(scope, job): job for job in JOBS}
    pid_of_port = {c.laddr.port: p.proc.pid for p in processes if p.proc.poll() is None
                   for c in psutil.Process(p.proc.pid).net_connections("tcp")}
    holders: dict[str, list[int]] = {job: [] for job in JOBS}
    for high, low, port in rows:
        key = (high << 32) | low
        key = key - (1 << 64) if key >= 1 << 63 else key
        if key in jobs:
            holders[jobs[key]].append(pid_of_port.get(port, -1))
    return holders


def settled_holders(database: str, processes: list[ServerProcess], seconds: float = 20) -> dict[str, list[int]]:
    """Job holders once every job has one, or what there is at the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        holders = job_holders(database, processes)
        if all(holders.values()) or time.monotonic() > deadline:
            return holders
        time.sleep(0.1)


def test_three_replicas_run_each_job_once_and_a_killed_holder_hands_it_over(replicas, database):
    jobs_every = ("--watchdog-interval", "0.2", "--retention-interval", "0.2")
    started = [replicas(*jobs_every) for _ in range(3)]
    processes = [p for p, _ in started]
    holders = settled_holders(database, processes)
    live = {p.proc.pid for p in processes}
    assert all(len(pids) == 1 and pids[0] in live for pids in holders.values()), holders

    # SIGKILL the watchdog's holder: PostgreSQL ends its session and its
    # locks, and a survivor takes the job at its next sweep.
    (holder,) = holders["watchdog"]
    victim = next(p for p in processes if p.proc.pid == holder)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    survivors = [p for p in processes if p is not victim]
    deadline = time.monotonic() + 20
    while True:
        after = job_holders(database, survivors)
        moved = all(len(pids) == 1 and pids[0] in {p.proc.pid for p in survivors} for pids in after.values())
        if moved or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert moved, after

    client = next(c for p, c in started if p is not victim)
    limit = trial_pb2.StoppingCondition(max_runtime=duration_pb2.Duration(nanos=300_000_000))
    trial = running_trial(client, name="after-the-kill", stopping_condition=limit)
    assert wait_for_state(client, trial.id, S.TRIAL_STATE_STOPPING_CANCELED)
    events = client.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events
    assert [e.to_state for e in events].count(S.TRIAL_STATE_STOPPING_CANCELED) == 1


def wait_for_state(client: Client, trial_id: int, state: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.trials.GetTrial(ts.GetTrialRequest(id=trial_id)).state == state:
            return True
        time.sleep(0.1)
    return False


def test_a_replica_killed_mid_traffic_loses_no_acknowledged_report(replicas):
    victim, a = replicas()
    _, b = replicas()
    trial = running_trial(a)
    acknowledged: list[int] = []
    stop = threading.Event()

    def send():
        step = 0
        while not stop.is_set():
            try:
                a.metrics.ReportMetrics(point(trial.id, step, float(step)), timeout=5)
            except grpc.RpcError:
                return
            acknowledged.append(step)
            step += 1

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    while len(acknowledged) < 50:
        time.sleep(0.01)
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.wait()
    stop.set()
    sender.join(10)
    got = b.metrics.GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="training", names=["loss"]))
    stored = set(got.series[0].steps)
    assert set(acknowledged) <= stored, sorted(set(acknowledged) - stored)


def test_connections_are_replicas_times_pool_size_whatever_the_clients(replicas, database):
    servers = [replicas("--reader-threads", "2") for _ in range(2)]
    trial = running_trial(servers[0][1])
    clients = [Client.connect(process.address) for process, _ in servers for _ in range(10)]

    def load(client: Client, offset: int):
        for step in range(20):
            client.metrics.ReportMetrics(point(trial.id, offset * 100 + step, 1.0))
            client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))

    threads = [threading.Thread(target=load, args=(c, i), daemon=True) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # The connections of these two processes only: other test runs may
    # have servers on the same database.
    ports = {c.laddr.port: process.proc.pid for process, _ in servers
             for c in psutil.Process(process.proc.pid).net_connections("tcp")}
    with psycopg.connect(postgres.DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT client_port FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'trialplane'"
        ).fetchall()
    per_process: dict[int, int] = {}
    for (port,) in rows:
        if port in ports:
            per_process[ports[port]] = per_process.get(ports[port], 0) + 1
    # Each replica: a pool of reader-threads x 2 connections, one to send
    # announcements, one to listen, one per job lease (watchdog, retention).
    per_replica = 2 * 2 + 4
    assert len(per_process) == len(servers), per_process
    assert all(0 < n <= per_replica for n in per_process.values()), per_process
    for c in clients:
        c.channel.close()


def test_replicas_starting_together_migrate_once(database):
    started: list[ServerProcess] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            started.append(ServerProcess(database))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert not errors and len(started) == 3, errors
        with psycopg.connect(database, autocommit=True) as conn:
            rows = conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version").fetchall()
        assert rows and all(count == 1 for _, count in rows), rows
        clients = [Client.connect(p.address) for p in started]
        trial = new_trial(clients[0], name="after-start")
        assert all(c.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).name == "after-start" for c in clients)
    finally:
        for p in started:
            assert p.terminate()[0] == 0


def test_a_database_that_does_not_exist_is_named_in_one_line():
    dsn = postgres.DSN.rsplit("/", 1)[0] + "/trialplane_no_such_database"
    result = subprocess.run([tool("trialplane"), "serve", "--port", "0", "--db", dsn],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert 'database "trialplane_no_such_database" does not exist' in line


def test_tokens_made_and_revoked_on_one_replica_hold_on_the_other(replicas, tmp_path):
    from trialplane.v1 import token_pb2
    from trialplane.v1 import token_service_pb2 as tk

    first = tmp_path / "a.token"
    a, _ = replicas("--admin-token-file", str(first), auth=True)
    b, _ = replicas("--admin-token-file", str(tmp_path / "b.token"), auth=True)
    # One database, one first admin token: the second replica found it made.
    assert first.exists() and not (tmp_path / "b.token").exists()
    admin = Client.connect(a.address, first.read_text().strip())
    made = admin.tokens.CreateToken(tk.CreateTokenRequest(
        token=token_pb2.Token(name="ci", kind=token_pb2.TOKEN_KIND_SERVICE, scopes=["read"])))
    on_b = Client.connect(b.address, made.secret)
    assert on_b.tokens.WhoAmI(tk.WhoAmIRequest()).principal == f"service token {made.token.id} (ci)"
    admin.tokens.RevokeToken(tk.RevokeTokenRequest(id=made.token.id))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            on_b.tokens.WhoAmI(tk.WhoAmIRequest())
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in err.details()
            break
        time.sleep(0.01)
    else:
        pytest.fail("replica b still accepted the token 5 s after it was revoked on replica a")
    for c in (admin, on_b):
        c.channel.close()
