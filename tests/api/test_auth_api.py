"""Tokens and the access table through a real server with auth on: every
method against every kind of principal, trial-run tokens bound to their run,
study-limited tokens, revocation and expiry, who changed a trial, and
secrets kept out of what the server stores and logs."""

from __future__ import annotations

import logging
import time
import uuid

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from support import Client, error_of, start_server
from support.trials import report
from trialplane.server.api.access import OPEN, TABLE
from trialplane.server.app import SERVICE_FILES
from trialplane.v1 import (
    checkpoint_pb2,
    log_pb2,
    metrics_pb2,
    study_pb2,
    token_pb2,
    trial_pb2,
    worker_pb2,
)
from trialplane.v1 import checkpoint_service_pb2 as cs
from trialplane.v1 import log_service_pb2 as ls
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import study_service_pb2 as ss
from trialplane.v1 import token_service_pb2 as tk
from trialplane.v1 import trial_service_pb2 as ts
from trialplane.v1 import worker_service_pb2 as ws

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
DENIED = grpc.StatusCode.PERMISSION_DENIED
MISSING = 10**9  # an id no resource has


@pytest.fixture
def secured(db_path):
    srv = start_server(db_path, auth=True)
    yield srv
    srv.stop()


def admin_secret(db_path) -> str:
    return db_path.with_suffix(".admin-token").read_text().strip()


@pytest.fixture
def admin(secured, db_path):
    c = Client.connect(secured.address, admin_secret(db_path))
    yield c
    c.channel.close()


def make_token(admin, name="t", scopes=("read",), study_ids=(), kind=token_pb2.TOKEN_KIND_USER, **extra):
    made = admin.tokens.CreateToken(tk.CreateTokenRequest(
        token=token_pb2.Token(name=name, kind=kind, scopes=list(scopes), study_ids=list(study_ids)), **extra))
    return made.secret, made.token


def bare_study(client, name: str):
    """A study whose trials need no hyperparameters."""
    study = study_pb2.Study(name=name, objective=study_pb2.Objective(
        metric_name="loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE))
    return client.studies.CreateStudy(ss.CreateStudyRequest(study=study))


def running_trial(client, study_id: int, name: str) -> trial_pb2.Trial:
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name=name, study_id=study_id)))
    return report(client, trial.id, trial_pb2.TRIAL_STATE_RUNNING)


def report_metrics(client, trial_id: int, step: int, run: int = 0, **values):
    avg = struct_pb2.Struct()
    avg.update(values or {"loss": 1.0 / step})
    return client.metrics.ReportMetrics(ms.ReportMetricsRequest(group="training", metrics=metrics_pb2.TrialMetrics(
        trial_id=trial_id, trial_run_id=run, steps_completed=step, metrics=metrics_pb2.Metrics(avg_metrics=avg))))


# --- the table is the API --------------------------------------------------

def api_methods() -> dict[str, object]:
    methods = {}
    for f in [*SERVICE_FILES, health_pb2, reflection_pb2]:
        for service in f.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                methods[f"/{service.full_name}/{m.name}"] = m
    return methods


def test_the_access_table_names_every_method_of_the_api_and_nothing_else():
    methods = api_methods()
    assert sorted(set(methods) - set(TABLE)) == []
    assert sorted(set(TABLE) - set(methods)) == []
    assert {m for m, rule in TABLE.items() if rule.scope == OPEN} == {
        "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch", "/grpc.health.v1.Health/List"}


# --- every method x every kind of principal ---------------------------------

# Methods whose requests name no stored resource: a study-limited token may call them.
TOUCHES_NOTHING = {
    "/trialplane.v1.StudyService/ValidateAlgorithmSettings",
    "/api.v1.beta1.Suggestion/ValidateAlgorithmSettings",
    "/api.v1.beta1.EarlyStopping/ValidateEarlyStoppingSettings",
    "/trialplane.v1.TokenService/WhoAmI",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}


def _message_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def aim(message, ids: dict, depth: int = 0) -> None:
    """Points every id field of a request, and of the messages it nests, at
    the resources in ids, by the field names the API uses."""
    by_type = {"Study": ids["study"], "Trial": ids["trial"], "Worker": ids["worker"]}
    for field in message.DESCRIPTOR.fields:
        name, repeated = field.name, field.is_repeated
        if field.type == field.TYPE_MESSAGE:
            if field.message_type.full_name.startswith("google.") or field.message_type.GetOptions().map_entry:
                continue
            if depth < 3:
                child = getattr(message, name).add() if repeated else getattr(message, name)
                aim(child, ids, depth + 1)
                if not repeated:
                    child.SetInParent()
        elif name in ("study_id", "trial_id", "trial_run_id") and not repeated:
            setattr(message, name, ids[name.removesuffix("_id").replace("trial_run", "run")])
        elif name == "trial_ids":
            message.trial_ids.append(ids["trial"])
        elif name == "uuid":
            message.uuid = ids["uuid"]
        elif name == "uuids":
            message.uuids.append(ids["uuid"])
        elif name == "id" and field.type != field.TYPE_STRING:
            owner = message.DESCRIPTOR.name if depth else ids["service"]
            setattr(message, name, by_type.get(owner.removesuffix("Service"), MISSING))


# Methods whose aimed request would end trial a for the methods after it: a
# bad field stops them just after the access check.
DISARMED = {"/trialplane.v1.TrialService/CompleteTrial": lambda r: setattr(r, "steps_completed", -1)}


def request_for(path: str, method, ids: dict) -> bytes:
    request = _message_class(method.input_type)()
    aim(request, {**ids, "service": path.split("/")[1].rsplit(".", 1)[-1]})
    DISARMED.get(path, lambda r: None)(request)
    return request.SerializeToString()


def call(channel, path: str, method, payload: bytes, secret: str | None) -> grpc.StatusCode:
    """The status of one call (OK when it answered); a stream still open
    after a moment passed its checks (DEADLINE_EXCEEDED)."""
    metadata = [("authorization", f"Bearer {secret}")] if secret else []
    raw = (lambda b: b, lambda b: b)
    try:
        if method.client_streaming and method.server_streaming:
            next(channel.stream_stream(path, *raw)(iter([payload]), metadata=metadata, timeout=0.5), None)
        elif method.client_streaming:
            channel.stream_unary(path, *raw)(iter([payload]), metadata=metadata, timeout=5)
        elif method.server_streaming:
            next(channel.unary_stream(path, *raw)(payload, metadata=metadata, timeout=0.5), None)
        else:
            channel.unary_unary(path, *raw)(payload, metadata=metadata, timeout=5)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.fixture
def world(secured, admin, db_path):
    """Two studies with a running trial each, its worker and checkpoint, and
    a token of every kind; ids of A's resources, B's, and of none."""
    a, b = bare_study(admin, "study-a"), bare_study(admin, "study-b")
    ta, tb = running_trial(admin, a.id, "ta"), running_trial(admin, b.id, "tb")
    ids = {}
    for key, study, trial in (("a", a, ta), ("b", b, tb)):
        w = admin.workers.RegisterWorker(ws.RegisterWorkerRequest(worker=worker_pb2.Worker(trial_id=trial.id, rank=0, type="worker")))
        cid = str(uuid.uuid4())
        admin.checkpoints.ReportCheckpoint(cs.ReportCheckpointRequest(checkpoint=checkpoint_pb2.Checkpoint(
            uuid=cid, trial_id=trial.id, state=checkpoint_pb2.CHECKPOINT_STATE_ACTIVE)))
        ids[key] = {"study": study.id, "trial": trial.id, "worker": w.id, "uuid": cid, "run": trial.trial_run_id}
    ids["none"] = {"study": MISSING, "trial": MISSING, "worker": MISSING, "uuid": str(uuid.uuid4()), "run": 0}
    tokens = {
        "none": None,
        "bogus": "tp_" + "x" * 43,
        "read": make_token(admin, "reader", ["read"])[0],
        "write": make_token(admin, "writer", ["write"])[0],
        "admin": admin_secret(db_path),
        "study-a": make_token(admin, "a-only", ["write"], [a.id])[0],
        "trial-run": admin.tokens.CreateTrialRunToken(tk.CreateTrialRunTokenRequest(trial_id=ta.id)).secret,
    }
    return tokens, ids


def expectations(path: str, rule) -> list[tuple[str, str, object]]:
    """(principal, whose resources the request names, expected status or
    "passes") for one method."""
    out = []
    if rule.scope != OPEN:
        out += [("none", "none", UNAUTHENTICATED), ("bogus", "none", UNAUTHENTICATED)]
    rank = {"read": 0, "write": 1, "admin": 2}
    for kind in ("read", "write", "admin"):
        needs_more = rule.scope in rank and rank[rule.scope] > rank[kind]
        out.append((kind, "none", DENIED if needs_more else "passes"))
    if rule.scope == OPEN:
        return out
    if not rule.trial_run:
        out.append(("trial-run", "none", DENIED))
    else:
        out.append(("trial-run", "a", "passes"))
        if path not in TOUCHES_NOTHING:
            out.append(("trial-run", "b", DENIED))
    if rule.scope == "admin":
        out.append(("study-a", "none", DENIED))
    elif path not in TOUCHES_NOTHING:
        out.append(("study-a", "b", DENIED))
    else:
        out.append(("study-a", "none", "passes"))
    return out


def test_every_method_answers_every_kind_of_principal_as_the_table_says(secured, world):
    tokens, ids = world
    channel = grpc.insecure_channel(secured.address)
    wrong, checked = [], 0
    for path, method in sorted(api_methods().items()):
        if path == "/grpc.health.v1.Health/Watch":
            continue  # answers nothing until the serving status changes
        for who, whose, want in expectations(path, TABLE[path]):
            got = call(channel, path, method, request_for(path, method, ids[whose]), tokens[who])
            checked += 1
            if (got in (UNAUTHENTICATED, DENIED)) if want == "passes" else got != want:
                wrong.append(f"{path} as {who} on {whose}'s: {got.name}, expected "
                             f"{want if isinstance(want, str) else want.name}")
    channel.close()
    assert wrong == [] and checked > 500


def test_a_study_limited_token_works_inside_its_study(secured, admin, world):
    tokens, ids = world
    limited = Client.connect(secured.address, tokens["study-a"])
    trial = limited.trials.GetTrial(ts.GetTrialRequest(id=ids["a"]["trial"]))
    listed = limited.trials.ListTrials(ts.ListTrialsRequest(study_id=ids["a"]["study"]))
    assert trial.name == "ta" and [t.name for t in listed.trials] == ["ta"]
    made = limited.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name="more", study_id=ids["a"]["study"])))
    assert made.study_id == ids["a"]["study"]
    err = error_of(limited.trials.ListTrials, ts.ListTrialsRequest())
    assert err.code == DENIED and err.reason == "PERMISSION_DENIED"
    assert "name one" in err.message and err.metadata["method"] == "/trialplane.v1.TrialService/ListTrials"
    err = error_of(limited.trials.GetTrial, ts.GetTrialRequest(id=ids["b"]["trial"]))
    assert (err.code, err.metadata["study_id"]) == (DENIED, str(ids["b"]["study"]))
    limited.channel.close()


# --- trial-run tokens ---------------------------------------------------------

def test_a_trial_run_token_reports_its_run_and_nothing_else(secured, admin):
    study = bare_study(admin, "s")
    trial = running_trial(admin, study.id, "t")
    other = running_trial(admin, study.id, "other")
    made = admin.tokens.CreateTrialRunToken(tk.CreateTrialRunTokenRequest(trial_id=trial.id))
    assert (made.token.kind, made.token.trial_id, made.token.trial_run_id) == (
        token_pb2.TOKEN_KIND_TRIAL_RUN, trial.id, trial.trial_run_id)
    run = Client.connect(secured.address, made.secret)
    assert report_metrics(run, trial.id, 1).ByteSize() >= 0
    assert run.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).name == "t"
    err = error_of(report_metrics, run, other.id, 1)
    assert (err.code, err.metadata["required_scope"], err.metadata["trial_id"]) == (DENIED, "trial_run", str(other.id))
    err = error_of(run.trials.ListTrials, ts.ListTrialsRequest(study_id=study.id))
    assert err.code == DENIED and "reporting calls of its own trial" in err.message
    err = error_of(report_metrics, run, trial.id, 2, run=trial.trial_run_id + 1)
    assert err.code == DENIED and f"not run {trial.trial_run_id + 1}" in err.message
    history = admin.metrics.GetMetricHistory(ms.GetMetricHistoryRequest(trial_ids=[trial.id], group="training",
                                                                         names=["loss"]))
    assert [list(s.steps) for s in history.series] == [[1]]
    run.channel.close()


def test_a_trial_run_token_stops_working_when_its_run_restarts_or_ends(secured, admin):
    study = bare_study(admin, "s")
    trial = running_trial(admin, study.id, "t")
    first = Client.connect(secured.address, admin.tokens.CreateTrialRunToken(
        tk.CreateTrialRunTokenRequest(trial_id=trial.id)).secret)
    report_metrics(first, trial.id, 1)
    admin.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    err = error_of(report_metrics, first, trial.id, 2)
    assert (err.code, err.reason, err.metadata["problem"]) == (UNAUTHENTICATED, "TOKEN_INVALID", "run_ended")
    stale = error_of(admin.tokens.CreateTrialRunToken, tk.CreateTrialRunTokenRequest(trial_id=trial.id, trial_run_id=1))
    assert (stale.code, stale.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "STALE_TRIAL_RUN")
    second_token = admin.tokens.CreateTrialRunToken(tk.CreateTrialRunTokenRequest(trial_id=trial.id))
    assert second_token.token.trial_run_id == trial.trial_run_id + 1
    second = Client.connect(secured.address, second_token.secret)
    report(second, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    report_metrics(second, trial.id, 2)
    report(second, trial.id, trial_pb2.TRIAL_STATE_COMPLETED)
    err = error_of(report_metrics, second, trial.id, 3)
    assert (err.code, err.metadata["problem"]) == (UNAUTHENTICATED, "run_ended")
    ended = error_of(admin.tokens.CreateTrialRunToken, tk.CreateTrialRunTokenRequest(trial_id=trial.id))
    assert ended.code == grpc.StatusCode.FAILED_PRECONDITION
    for c in (first, second):
        c.channel.close()


# --- tokens themselves ----------------------------------------------------------

def test_the_first_admin_token_is_written_once_for_its_owner_only(db_path):
    srv = start_server(db_path, auth=True)
    path = db_path.with_suffix(".admin-token")
    secret = path.read_text().strip()
    assert oct(path.stat().st_mode & 0o777) == "0o600" and secret.startswith("tp_") and len(secret) == 46
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")] == []
    srv.stop()
    srv = start_server(db_path, auth=True)
    assert path.read_text().strip() == secret
    c = Client.connect(srv.address, secret)
    me = c.tokens.WhoAmI(tk.WhoAmIRequest())
    assert (me.principal, list(me.token.scopes), me.token.created_by, me.auth_enabled) == (
        "user token 1 (admin)", ["admin"], "server", True)
    listed = c.tokens.ListTokens(tk.ListTokensRequest()).tokens
    assert [t.name for t in listed] == ["admin"]
    c.channel.close()
    srv.stop()


def test_revocation_is_effective_at_once_and_lists_keep_no_secret(secured, admin):
    secret, token = make_token(admin, "ci", ["write"])
    ci = Client.connect(secured.address, secret)
    assert ci.tokens.WhoAmI(tk.WhoAmIRequest()).principal == f"user token {token.id} (ci)"
    revoked = admin.tokens.RevokeToken(tk.RevokeTokenRequest(id=token.id))
    assert revoked.HasField("revoke_time")
    err = error_of(ci.tokens.WhoAmI, tk.WhoAmIRequest())
    assert (err.code, err.metadata["problem"]) == (UNAUTHENTICATED, "revoked")
    again = admin.tokens.RevokeToken(tk.RevokeTokenRequest(id=token.id))
    assert again.revoke_time == revoked.revoke_time
    assert [t.name for t in admin.tokens.ListTokens(tk.ListTokensRequest()).tokens] == ["admin"]
    everything = admin.tokens.ListTokens(tk.ListTokensRequest(include_inactive=True)).tokens
    assert [t.name for t in everything] == ["ci", "admin"]
    assert secret not in str(everything)
    assert error_of(admin.tokens.RevokeToken, tk.RevokeTokenRequest(id=MISSING)).code == grpc.StatusCode.NOT_FOUND
    ci.channel.close()


def test_an_expired_token_is_refused(clock, db_path):
    srv = start_server(db_path, clock=clock, auth=True)
    admin = Client.connect(srv.address, admin_secret(db_path))
    made = admin.tokens.CreateToken(tk.CreateTokenRequest(
        token=token_pb2.Token(name="brief", kind=token_pb2.TOKEN_KIND_SERVICE, scopes=["read"]),
        ttl=duration_pb2.Duration(seconds=60)))
    brief = Client.connect(srv.address, made.secret)
    assert brief.tokens.WhoAmI(tk.WhoAmIRequest()).token.kind == token_pb2.TOKEN_KIND_SERVICE
    clock.advance(61)
    err = error_of(brief.tokens.WhoAmI, tk.WhoAmIRequest())
    assert (err.code, err.metadata["problem"]) == (UNAUTHENTICATED, "expired")
    for c in (admin, brief):
        c.channel.close()
    srv.stop()


@pytest.mark.parametrize("token, field, words", [
    (token_pb2.Token(name="", kind=token_pb2.TOKEN_KIND_USER, scopes=["read"]), "token.name", "1 to 100"),
    (token_pb2.Token(name="x", kind=token_pb2.TOKEN_KIND_TRIAL_RUN, scopes=["read"]), "token.kind", "CreateTrialRunToken"),
    (token_pb2.Token(name="x", kind=token_pb2.TOKEN_KIND_USER, scopes=["root"]), "token.scopes", "unknown scope 'root'"),
    (token_pb2.Token(name="x", kind=token_pb2.TOKEN_KIND_USER), "token.scopes", "at least one"),
    (token_pb2.Token(name="x", kind=token_pb2.TOKEN_KIND_USER, scopes=["admin"], study_ids=[1]), "token.study_ids",
     "every study"),
])
def test_bad_tokens_are_refused_with_the_field(admin, token, field, words):
    err = error_of(admin.tokens.CreateToken, tk.CreateTokenRequest(token=token))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and words in err.violations[field]


def test_a_token_for_a_study_that_does_not_exist_is_not_made(admin):
    err = error_of(admin.tokens.CreateToken, tk.CreateTokenRequest(
        token=token_pb2.Token(name="x", kind=token_pb2.TOKEN_KIND_USER, scopes=["read"], study_ids=[MISSING])))
    assert err.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("header, problem", [
    ("Basic dXNlcjpwYXNz", "malformed"), ("Bearer", "malformed"), ("Bearer tp_nope", "unknown")])
def test_a_bad_authorization_header_is_unauthenticated_with_the_problem(secured, header, problem):
    channel = grpc.insecure_channel(secured.address)
    stub = Client.connect(secured.address).tokens
    err = error_of(stub.WhoAmI, tk.WhoAmIRequest(), metadata=[("authorization", header)])
    assert (err.code, err.metadata["problem"]) == (UNAUTHENTICATED, problem)
    channel.close()


def test_with_auth_off_every_call_is_anonymous(client):
    me = client.tokens.WhoAmI(tk.WhoAmIRequest())
    assert (me.principal, me.auth_enabled, me.HasField("token")) == ("anonymous", False, False)


# --- who did it, and secrets kept out --------------------------------------------

def test_trial_events_name_the_principal_that_changed_the_trial(secured, admin):
    study = bare_study(admin, "s")
    trial = running_trial(admin, study.id, "t")
    secret, token = make_token(admin, "alice", ["write"])
    alice = Client.connect(secured.address, secret)
    alice.trials.StopTrial(ts.StopTrialRequest(id=trial.id, message="enough"))
    events = admin.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events
    by = {trial_pb2.TrialState.Name(e.to_state): dict(e.details.items()).get("principal") for e in events}
    assert by["TRIAL_STATE_STOPPING_CANCELED"] == f"user token {token.id} (alice)"
    assert by["TRIAL_STATE_RUNNING"] == "user token 1 (admin)"
    alice.channel.close()


def test_secrets_never_reach_stored_logs_events_or_the_server_log(secured, admin, caplog):
    study = bare_study(admin, "s")
    trial = running_trial(admin, study.id, "t")
    secret, _ = make_token(admin, "leaky", ["write"])
    caplog.set_level(logging.DEBUG)
    admin.logs.AddLogs(ls.AddLogsRequest(logs=[log_pb2.TaskLog(trial_id=trial.id, message=f"export TOKEN={secret}")]))
    report(admin, trial.id, trial_pb2.TRIAL_STATE_ERROR, failure_reason=f"auth failed with {secret}")
    error_of(Client.connect(secured.address, secret + "x").tokens.WhoAmI, tk.WhoAmIRequest())
    lines = admin.logs.ListLogs(ls.ListLogsRequest(trial_id=trial.id)).logs
    assert [line.message for line in lines] == ["export TOKEN=tp_[redacted]"]
    stored = admin.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    events = admin.trials.ListTrialEvents(ts.ListTrialEventsRequest(trial_id=trial.id)).events
    assert stored.failure_reason == "auth failed with tp_[redacted]"
    assert secret not in str(stored) + str(events)
    assert secret not in caplog.text and admin_secret_of_file(secured) not in caplog.text


def admin_secret_of_file(secured) -> str:
    return open(secured.config.admin_token_file).read().strip()


def test_a_method_missing_from_the_table_is_refused_even_to_admin(monkeypatch, db_path):
    monkeypatch.delitem(TABLE, "/trialplane.v1.TrialService/GetTrial")
    srv = start_server(db_path, auth=True)
    admin = Client.connect(srv.address, admin_secret(db_path))
    err = error_of(admin.trials.GetTrial, ts.GetTrialRequest(id=1))
    assert err.code == DENIED and "not in the server's access table" in err.message
    assert admin.tokens.WhoAmI(tk.WhoAmIRequest()).principal == "user token 1 (admin)"
    admin.channel.close()
    srv.stop()


def test_a_revoked_token_ends_its_open_streams_at_their_next_message(secured, admin):
    from trialplane.v1 import profiler_pb2 as pp
    from trialplane.v1 import profiler_service_pb2 as ps

    study = bare_study(admin, "s")
    trial = running_trial(admin, study.id, "t")
    secret, token = make_token(admin, "streamer", ["write"])
    streamer = Client.connect(secured.address, secret)
    t0 = (time.time_ns() // 1000 // 1_000_000 - 3600) * 1_000_000

    def batch(sequence):
        return ps.StreamProfilerMetricsRequest(stream_id="s1", sequence=sequence, batch=pp.TrialProfilerMetricsBatch(
            values=[float(sequence)], batches=[sequence], timestamps=[t0 + sequence],
            labels=pp.TrialProfilerMetricLabels(trial_id=trial.id, name="gpu", agent_id="a", gpu_uuid="g",
                                                metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM)))

    def batches():
        yield batch(1)
        admin.tokens.RevokeToken(tk.RevokeTokenRequest(id=token.id))
        yield batch(2)
        yield batch(3)

    watch = streamer.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial.id))
    with pytest.raises(grpc.RpcError) as info:
        for _ in streamer.profiler.StreamProfilerMetrics(batches()):
            pass
    assert (info.value.code(), "revoked" in info.value.details()) == (UNAUTHENTICATED, True)
    # The watch opened before the revocation ends at its next answer.
    admin.logs.AddLogs(ls.AddLogsRequest(logs=[log_pb2.TaskLog(trial_id=trial.id, message="after")]))
    with pytest.raises(grpc.RpcError) as info:
        next(watch)
    assert info.value.code() == UNAUTHENTICATED
    series = admin.profiler.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial.id)).series
    assert sum(s.sample_count for s in series) <= 1
    streamer.channel.close()


def test_ids_of_deleted_studies_and_trials_are_not_given_out_again(secured, admin):
    kept = bare_study(admin, "kept")
    gone = bare_study(admin, "gone")
    trial = running_trial(admin, gone.id, "t")
    secret, _ = make_token(admin, "gone-only", ["read"], [gone.id])
    run_secret = admin.tokens.CreateTrialRunToken(tk.CreateTrialRunTokenRequest(trial_id=trial.id)).secret
    admin.trials.KillTrial(ts.KillTrialRequest(id=trial.id))
    admin.studies.DeleteStudy(ss.DeleteStudyRequest(id=gone.id, force=True))
    new_study = bare_study(admin, "new")
    new_trial = running_trial(admin, new_study.id, "n")
    assert new_study.id > gone.id > kept.id and new_trial.id > trial.id
    limited = Client.connect(secured.address, secret)
    assert error_of(limited.studies.GetStudy, ss.GetStudyRequest(id=new_study.id)).code == DENIED
    old_run = Client.connect(secured.address, run_secret)
    err = error_of(old_run.trials.GetTrial, ts.GetTrialRequest(id=new_trial.id))
    assert err.code == DENIED and err.metadata["trial_id"] == str(new_trial.id)
    for c in (limited, old_run):
        c.channel.close()


def test_revoking_a_token_revokes_the_trial_run_tokens_made_with_it(secured, admin):
    study = bare_study(admin, "s")
    trial = running_trial(admin, study.id, "t")
    agent_secret, agent_token = make_token(admin, "agent", ["write"], kind=token_pb2.TOKEN_KIND_SERVICE)
    agent = Client.connect(secured.address, agent_secret)
    made = agent.tokens.CreateTrialRunToken(tk.CreateTrialRunTokenRequest(trial_id=trial.id))
    by_admin = admin.tokens.CreateTrialRunToken(tk.CreateTrialRunTokenRequest(trial_id=trial.id))
    child = Client.connect(secured.address, made.secret)
    assert report_metrics(child, trial.id, 1).created
    admin.tokens.RevokeToken(tk.RevokeTokenRequest(id=agent_token.id))
    err = error_of(report_metrics, child, trial.id, 2)
    assert (err.code, err.metadata["problem"]) == (UNAUTHENTICATED, "revoked")
    # The admin's own trial-run token for the same run is not the agent's: it still works.
    other = Client.connect(secured.address, by_admin.secret)
    assert report_metrics(other, trial.id, 2).created
    for c in (agent, child, other):
        c.channel.close()
