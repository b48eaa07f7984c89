"""WorkerService through a real server: registration, heartbeats, worker states,
updates, listing and rendezvous."""

import threading

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from support import error_of
from trialplane.v1 import trial_pb2, worker_pb2
from trialplane.v1 import trial_service_pb2 as ts
from trialplane.v1 import worker_service_pb2 as ws

W = worker_pb2
PENDING, RUNNING, COMPLETED, KILLED, ERROR = (
    W.WORKER_STATE_PENDING,
    W.WORKER_STATE_RUNNING,
    W.WORKER_STATE_COMPLETED,
    W.WORKER_STATE_KILLED,
    W.WORKER_STATE_ERROR,
)


# --- helpers ----------------------------------------------------------------


def create_trial(client, name="t", worker_count=1) -> trial_pb2.Trial:
    return client.trials.CreateTrial(
        ts.CreateTrialRequest(trial=trial_pb2.Trial(name=name, resources=trial_pb2.Resources(worker_count=worker_count)))
    )


def get_trial(client, trial_id) -> trial_pb2.Trial:
    return client.trials.GetTrial(ts.GetTrialRequest(id=trial_id))


def register_req(trial_id, rank=0, type="worker", request_id="", **fields) -> ws.RegisterWorkerRequest:
    return ws.RegisterWorkerRequest(
        worker=W.Worker(trial_id=trial_id, rank=rank, type=type, **fields), request_id=request_id
    )


def register(client, trial_id, rank=0, type="worker", request_id="", **fields) -> W.Worker:
    return client.workers.RegisterWorker(register_req(trial_id, rank, type, request_id, **fields))


def get_worker(client, worker_id) -> W.Worker:
    return client.workers.GetWorker(ws.GetWorkerRequest(id=worker_id))


def report(client, worker_id, state, message="") -> W.Worker:
    return client.workers.ReportWorkerState(ws.ReportWorkerStateRequest(id=worker_id, state=state, message=message))


def heartbeat(client, worker_id) -> W.Worker:
    return client.workers.HeartbeatWorker(ws.HeartbeatWorkerRequest(id=worker_id))


def update(client, worker, paths) -> W.Worker:
    return client.workers.UpdateWorker(
        ws.UpdateWorkerRequest(worker=worker, update_mask=field_mask_pb2.FieldMask(paths=paths))
    )


def list_workers(client, **kw) -> ws.ListWorkersResponse:
    return client.workers.ListWorkers(ws.ListWorkersRequest(**kw))


def list_ids(client, **kw) -> list[int]:
    return [w.id for w in list_workers(client, **kw).workers]


def all_pages(client, page_size, **kw) -> tuple[list[int], int]:
    """Every worker id over all pages, and how many pages it took."""
    seen, token, pages = [], "", 0
    while True:
        resp = list_workers(client, page_size=page_size, page_token=token, **kw)
        pages += 1
        assert len(resp.workers) <= page_size
        seen.extend(w.id for w in resp.workers)
        token = resp.next_page_token
        if not token:
            return seen, pages
        assert pages < 100, "pagination does not terminate"


def rendezvous_req(trial_id, worker_id, timeout_s=None) -> ws.GetRendezvousInfoRequest:
    req = ws.GetRendezvousInfoRequest(trial_id=trial_id, worker_id=worker_id)
    if timeout_s is not None:
        d = duration_pb2.Duration()
        d.FromNanoseconds(int(timeout_s * 1e9))
        req.timeout.CopyFrom(d)
    return req


def us(ts_) -> int:
    return ts_.ToMicroseconds()


def assert_invalid(err, field, reason="INVALID_FIELD"):
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err
    assert field in err.violations, err.violations
    assert err.reason == reason


# --- RegisterWorker ---------------------------------------------------------


def test_register_round_trips_fields(client):
    trial = create_trial(client, worker_count=2)
    w = register(client, trial.id, rank=1, type="chief", address="10.0.0.1:29500", slots=4, tags=["gpu", "a100"])
    assert w.id > 0
    assert w.trial_id == trial.id
    assert w.type == "chief"
    assert w.rank == 1
    assert w.slots == 4
    assert w.address == "10.0.0.1:29500"
    assert list(w.tags) == ["gpu", "a100"]
    assert w.state == PENDING
    assert w.trial_run_id == trial.trial_run_id
    assert w.trial_run_id > 0
    assert w.HasField("last_heartbeat_time") and us(w.last_heartbeat_time) > 0
    assert w.HasField("create_time") and us(w.create_time) > 0
    assert us(w.update_time) >= us(w.create_time)
    assert get_worker(client, w.id) == w


def test_register_ignores_output_only_fields(client):
    trial = create_trial(client)
    w = register(client, trial.id, state=ERROR, trial_run_id=99, id=12345)
    assert w.state == PENDING
    assert w.trial_run_id == trial.trial_run_id
    assert w.id != 12345
    assert error_of(get_worker, client, 12345).code == grpc.StatusCode.NOT_FOUND


def test_register_retry_with_request_id_returns_same_worker(client):
    trial = create_trial(client, worker_count=2)
    req = register_req(trial.id, rank=0, address="h:1", slots=2, request_id="reg-1")
    first = client.workers.RegisterWorker(req)
    second = client.workers.RegisterWorker(req)
    assert second.id == first.id
    assert second == first
    assert list_ids(client, trial_id=trial.id) == [first.id]
    # A different request id with the same rank is a second registration, which collides.
    err = error_of(client.workers.RegisterWorker, register_req(trial.id, rank=0, request_id="reg-2"))
    assert err.code == grpc.StatusCode.ALREADY_EXISTS
    assert list_ids(client, trial_id=trial.id) == [first.id]


def test_register_distinct_request_ids_make_distinct_workers(client):
    trial = create_trial(client, worker_count=2)
    a = register(client, trial.id, rank=0, request_id="a")
    b = register(client, trial.id, rank=1, request_id="b")
    assert a.id != b.id
    assert list_ids(client, trial_id=trial.id) == [a.id, b.id]


def test_register_duplicate_rank_in_same_run_is_already_exists(client):
    trial = create_trial(client, worker_count=2)
    register(client, trial.id, rank=0)
    err = error_of(register, client, trial.id, rank=0, type="other")
    assert err.code == grpc.StatusCode.ALREADY_EXISTS
    assert err.reason == "RESOURCE_EXISTS"
    # The same rank in another trial is fine.
    other = create_trial(client, "other")
    assert register(client, other.id, rank=0).rank == 0


def test_register_unknown_trial_is_not_found(client):
    err = error_of(register, client, 424242)
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.reason == "RESOURCE_NOT_FOUND"
    assert list_workers(client).workers == []


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"trial_id": 0}, "worker.trial_id"),
        ({"trial_id": -3}, "worker.trial_id"),
        ({"type": ""}, "worker.type"),
        ({"type": "x" * 129}, "worker.type"),
        ({"rank": -1}, "worker.rank"),
        ({"slots": -2}, "worker.slots"),
        ({"tags": ["a", "a"]}, "worker.tags"),
        ({"tags": ["ok", ""]}, "worker.tags[1]"),
        ({"address": "h" * 513}, "worker.address"),
    ],
)
def test_register_bad_input_is_invalid_argument(client, fields, field):
    trial = create_trial(client)
    args = {"trial_id": trial.id, "rank": 0, "type": "worker"}
    args.update(fields)
    err = error_of(client.workers.RegisterWorker, register_req(**args))
    assert_invalid(err, field)
    assert list_workers(client).workers == []


def test_register_reports_every_violation_at_once(client):
    err = error_of(client.workers.RegisterWorker, register_req(0, rank=-1, type="", slots=-1, tags=["a", "a"]))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert {"worker.trial_id", "worker.type", "worker.rank", "worker.slots", "worker.tags"} <= set(err.violations)


def test_register_too_long_request_id_is_invalid(client):
    trial = create_trial(client)
    err = error_of(client.workers.RegisterWorker, register_req(trial.id, request_id="r" * 129))
    assert_invalid(err, "request_id")


def test_register_on_canceled_trial_is_failed_precondition(client):
    trial = create_trial(client)
    assert trial.state == trial_pb2.TRIAL_STATE_QUEUED
    killed = client.trials.KillTrial(ts.KillTrialRequest(id=trial.id))
    assert killed.state == trial_pb2.TRIAL_STATE_CANCELED
    err = error_of(register, client, trial.id)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "ILLEGAL_TRANSITION"
    assert err.metadata["trial_id"] == str(trial.id)
    assert err.metadata["state"] == "TRIAL_STATE_CANCELED"
    assert list_workers(client, trial_id=trial.id).workers == []


def test_restart_gives_new_run_and_frees_ranks(client):
    trial = create_trial(client, worker_count=1)
    old = register(client, trial.id, rank=0, address="old:1")
    assert old.trial_run_id == trial.trial_run_id
    restarted = client.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    assert restarted.trial_run_id != trial.trial_run_id
    new = register(client, trial.id, rank=0, address="new:1")
    assert new.trial_run_id == restarted.trial_run_id
    assert new.id != old.id
    # The rank is taken again in the new run.
    assert error_of(register, client, trial.id, rank=0).code == grpc.StatusCode.ALREADY_EXISTS
    assert list_ids(client, trial_id=trial.id, trial_run_id=old.trial_run_id) == [old.id]
    assert list_ids(client, trial_id=trial.id, trial_run_id=new.trial_run_id) == [new.id]
    assert list_ids(client, trial_id=trial.id) == [old.id, new.id]
    # The old run's worker is untouched.
    assert get_worker(client, old.id).trial_run_id == old.trial_run_id


# --- HeartbeatWorker --------------------------------------------------------


def test_heartbeat_moves_last_heartbeat_forward(client):
    trial = create_trial(client)
    w = register(client, trial.id)
    first = heartbeat(client, w.id)
    assert us(first.last_heartbeat_time) >= us(w.last_heartbeat_time)
    second = heartbeat(client, w.id)
    assert us(second.last_heartbeat_time) >= us(first.last_heartbeat_time)
    assert second.state == PENDING
    assert get_worker(client, w.id).last_heartbeat_time == second.last_heartbeat_time
    report(client, w.id, RUNNING)
    assert heartbeat(client, w.id).state == RUNNING


@pytest.mark.parametrize("terminal", [COMPLETED, KILLED, ERROR])
def test_heartbeat_of_terminal_worker_is_failed_precondition(client, terminal):
    trial = create_trial(client)
    w = register(client, trial.id)
    done = report(client, w.id, terminal)
    err = error_of(heartbeat, client, w.id)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "ILLEGAL_TRANSITION"
    assert err.metadata["worker_id"] == str(w.id)
    assert err.metadata["state"] == W.WorkerState.Name(terminal)
    assert get_worker(client, w.id).last_heartbeat_time == done.last_heartbeat_time


def test_heartbeat_unknown_and_zero_ids(client):
    assert error_of(heartbeat, client, 987654).code == grpc.StatusCode.NOT_FOUND
    assert_invalid(error_of(heartbeat, client, 0), "id")


# --- ReportWorkerState ------------------------------------------------------


def test_report_pending_running_completed(client):
    trial = create_trial(client)
    w = register(client, trial.id)
    running = report(client, w.id, RUNNING, "started")
    assert running.state == RUNNING
    assert us(running.last_heartbeat_time) >= us(w.last_heartbeat_time)
    completed = report(client, w.id, COMPLETED)
    assert completed.state == COMPLETED
    assert get_worker(client, w.id).state == COMPLETED


@pytest.mark.parametrize("target", [COMPLETED, KILLED, ERROR])
def test_report_pending_straight_to_terminal(client, target):
    trial = create_trial(client)
    w = register(client, trial.id)
    assert report(client, w.id, target).state == target


def test_report_same_state_is_a_no_op(client):
    trial = create_trial(client)
    w = register(client, trial.id)
    same = report(client, w.id, PENDING)
    assert same.state == PENDING
    assert same.last_heartbeat_time == w.last_heartbeat_time
    running = report(client, w.id, RUNNING)
    again = report(client, w.id, RUNNING)
    assert again.state == RUNNING
    assert again.last_heartbeat_time == running.last_heartbeat_time
    done = report(client, w.id, COMPLETED)
    assert report(client, w.id, COMPLETED).state == COMPLETED
    assert get_worker(client, w.id).last_heartbeat_time == done.last_heartbeat_time


@pytest.mark.parametrize(
    "path, target",
    [
        ([COMPLETED], RUNNING),
        ([COMPLETED], PENDING),
        ([RUNNING], PENDING),
        ([KILLED], RUNNING),
        ([ERROR], COMPLETED),
        ([RUNNING, COMPLETED], ERROR),
    ],
)
def test_report_illegal_transitions(client, path, target):
    trial = create_trial(client)
    w = register(client, trial.id)
    for state in path:
        report(client, w.id, state)
    err = error_of(report, client, w.id, target)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "ILLEGAL_TRANSITION"
    name = W.WorkerState.Name
    assert err.metadata["from_state"] == name(path[-1])
    assert err.metadata["to_state"] == name(target)
    assert err.metadata["worker_id"] == str(w.id)
    assert get_worker(client, w.id).state == path[-1]


def test_report_completed_to_running_metadata(client):
    trial = create_trial(client)
    w = register(client, trial.id)
    report(client, w.id, RUNNING)
    report(client, w.id, COMPLETED)
    err = error_of(report, client, w.id, RUNNING)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert (err.metadata["from_state"], err.metadata["to_state"]) == ("WORKER_STATE_COMPLETED", "WORKER_STATE_RUNNING")


def test_report_unspecified_or_unknown_state_is_invalid(client):
    trial = create_trial(client)
    w = register(client, trial.id)
    err = error_of(report, client, w.id, W.WORKER_STATE_UNSPECIFIED)
    assert_invalid(err, "state")
    err = error_of(report, client, w.id, 77)
    assert_invalid(err, "state")
    assert "77" in err.violations["state"]
    assert get_worker(client, w.id).state == PENDING


def test_report_unknown_and_zero_ids(client):
    assert error_of(report, client, 987654, RUNNING).code == grpc.StatusCode.NOT_FOUND
    assert_invalid(error_of(report, client, 0, RUNNING), "id")
    assert_invalid(error_of(report, client, -5, RUNNING), "id")


# --- GetWorker / DeleteWorker ----------------------------------------------


def test_get_and_delete(client):
    trial = create_trial(client, worker_count=2)
    a = register(client, trial.id, rank=0)
    b = register(client, trial.id, rank=1)
    deleted = client.workers.DeleteWorker(ws.DeleteWorkerRequest(id=a.id))
    assert deleted == a
    err = error_of(get_worker, client, a.id)
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.reason == "RESOURCE_NOT_FOUND"
    err = error_of(client.workers.DeleteWorker, ws.DeleteWorkerRequest(id=a.id))
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert list_ids(client, trial_id=trial.id) == [b.id]
    # The freed rank can be registered again.
    again = register(client, trial.id, rank=0)
    assert again.id not in (a.id, b.id)


@pytest.mark.parametrize("bad_id", [0, -1])
def test_get_and_delete_need_a_positive_id(client, bad_id):
    assert_invalid(error_of(get_worker, client, bad_id), "id")
    assert_invalid(error_of(client.workers.DeleteWorker, ws.DeleteWorkerRequest(id=bad_id)), "id")


def test_get_unknown_is_not_found(client):
    err = error_of(get_worker, client, 31337)
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.metadata["resource"] == "worker"
    assert err.metadata["id"] == "31337"


def test_delete_trial_removes_its_workers(client):
    trial = create_trial(client)
    w = register(client, trial.id)
    client.trials.DeleteTrial(ts.DeleteTrialRequest(id=trial.id, force=True))
    assert error_of(get_worker, client, w.id).code == grpc.StatusCode.NOT_FOUND


# --- UpdateWorker -----------------------------------------------------------


def test_update_tags_address_slots(client):
    trial = create_trial(client)
    w = register(client, trial.id, address="a:1", slots=1, tags=["old"])
    patch = W.Worker(id=w.id, tags=["x", "y"], address="h:1", slots=8, type="ignored", rank=7, state=ERROR)
    upd = update(client, patch, ["tags", "address", "slots"])
    assert list(upd.tags) == ["x", "y"]
    assert upd.address == "h:1"
    assert upd.slots == 8
    # Fields outside the mask stay.
    assert (upd.type, upd.rank, upd.state, upd.trial_id, upd.trial_run_id) == ("worker", 0, PENDING, trial.id, w.trial_run_id)
    assert us(upd.update_time) >= us(w.update_time)
    assert get_worker(client, w.id) == upd


def test_update_only_masked_fields(client):
    trial = create_trial(client)
    w = register(client, trial.id, address="a:1", slots=3, tags=["keep"])
    upd = update(client, W.Worker(id=w.id, address="b:2", slots=9, tags=["drop"]), ["address"])
    assert (upd.address, upd.slots, list(upd.tags)) == ("b:2", 3, ["keep"])
    upd = update(client, W.Worker(id=w.id), ["tags"])
    assert list(upd.tags) == []
    assert upd.address == "b:2"
    upd = update(client, W.Worker(id=w.id, slots=0), ["slots"])
    assert upd.slots == 0


def test_update_bad_masks_and_values(client):
    trial = create_trial(client)
    w = register(client, trial.id, slots=2)
    for paths in (["state"], ["rank"], ["tags", "trial_run_id"], []):
        err = error_of(update, client, W.Worker(id=w.id, tags=["x"]), paths)
        assert_invalid(err, "update_mask")
    assert_invalid(error_of(update, client, W.Worker(id=w.id, slots=-1), ["slots"]), "worker.slots")
    assert_invalid(error_of(update, client, W.Worker(id=w.id, tags=["a", "a"]), ["tags"]), "worker.tags")
    assert_invalid(error_of(update, client, W.Worker(id=0, slots=1), ["slots"]), "worker.id")
    err = error_of(update, client, W.Worker(id=999999, slots=1), ["slots"])
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert get_worker(client, w.id).slots == 2


# --- ListWorkers ------------------------------------------------------------


def test_list_by_trial_run_and_state(client):
    t1 = create_trial(client, "one", worker_count=3)
    t2 = create_trial(client, "two")
    a = register(client, t1.id, rank=0)
    b = register(client, t1.id, rank=1)
    c = register(client, t2.id, rank=0)
    report(client, b.id, RUNNING)
    assert list_ids(client) == [a.id, b.id, c.id]
    assert list_ids(client, trial_id=t1.id) == [a.id, b.id]
    assert list_ids(client, trial_id=t2.id) == [c.id]

    client.trials.RestartTrial(ts.RestartTrialRequest(id=t1.id))
    run2 = get_trial(client, t1.id).trial_run_id
    d = register(client, t1.id, rank=0)
    assert list_ids(client, trial_id=t1.id, trial_run_id=t1.trial_run_id) == [a.id, b.id]
    assert list_ids(client, trial_id=t1.id, trial_run_id=run2) == [d.id]
    assert list_ids(client, trial_id=t1.id) == [a.id, b.id, d.id]

    assert list_ids(client, trial_id=t1.id, states=[RUNNING]) == [b.id]
    assert list_ids(client, trial_id=t1.id, states=[PENDING]) == [a.id, d.id]
    assert list_ids(client, states=[PENDING, RUNNING]) == [a.id, b.id, c.id, d.id]
    assert list_ids(client, states=[COMPLETED]) == []
    assert list_ids(client, trial_id=t1.id, trial_run_id=run2, states=[RUNNING]) == []


def test_list_unknown_trial_is_not_found(client):
    assert error_of(list_workers, client, trial_id=55555).code == grpc.StatusCode.NOT_FOUND


def test_list_bad_filters(client):
    assert_invalid(error_of(list_workers, client, trial_id=-1), "trial_id")
    assert_invalid(error_of(list_workers, client, states=[RUNNING, 0]), "states[1]")
    assert_invalid(error_of(list_workers, client, states=[77]), "states[0]")
    assert_invalid(error_of(list_workers, client, page_size=-1), "page_size")


def test_list_negative_trial_run_id_names_its_field(client):
    err = error_of(list_workers, client, trial_run_id=-1)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "trial_run_id" in err.violations, err.violations


def test_list_pages_of_two_over_five(client):
    trial = create_trial(client, worker_count=5)
    ids = [register(client, trial.id, rank=r).id for r in (3, 0, 4, 1, 2)]
    seen, pages = all_pages(client, 2, trial_id=trial.id)
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(ids)

    first = list_workers(client, trial_id=trial.id, page_size=2)
    assert len(first.workers) == 2 and first.next_page_token
    # Exactly divisible: the last full page carries no token for an empty page.
    seen, pages = all_pages(client, 5, trial_id=trial.id)
    assert (seen, pages) == (sorted(ids), 1)


def test_list_pages_with_state_filter(client):
    trial = create_trial(client, worker_count=6)
    ids = [register(client, trial.id, rank=r).id for r in range(6)]
    running = ids[::2]
    for i in running:
        report(client, i, RUNNING)
    seen, pages = all_pages(client, 2, trial_id=trial.id, states=[RUNNING])
    assert seen == running and pages == 2


def test_list_page_token_errors(client):
    trial = create_trial(client, worker_count=3)
    other = create_trial(client, "other")
    for r in range(3):
        register(client, trial.id, rank=r)
    for token in ("nope!", "e30", "!!!", "eyJrIjpbMV19"):
        err = error_of(list_workers, client, trial_id=trial.id, page_token=token)
        assert_invalid(err, "page_token", reason="INVALID_PAGE_TOKEN")
    token = list_workers(client, trial_id=trial.id, page_size=1).next_page_token
    assert token
    # A token only fits the query it came from.
    err = error_of(list_workers, client, trial_id=other.id, page_size=1, page_token=token)
    assert_invalid(err, "page_token", reason="INVALID_PAGE_TOKEN")
    err = error_of(list_workers, client, trial_id=trial.id, states=[PENDING], page_size=1, page_token=token)
    assert err.reason == "INVALID_PAGE_TOKEN"


# --- GetRendezvousInfo ------------------------------------------------------


def test_rendezvous_orders_by_rank(client):
    trial = create_trial(client, worker_count=2)
    w1 = register(client, trial.id, rank=1, address="h1:1", slots=4)
    w0 = register(client, trial.id, rank=0, address="h0:1", slots=2)
    info1 = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, w1.id), timeout=10)
    info0 = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, w0.id), timeout=10)
    for info in (info0, info1):
        assert list(info.addresses) == ["h0:1", "h1:1"]
        assert list(info.slots) == [2, 4]
        assert info.trial_run_id == trial.trial_run_id
    assert info0.rank == 0
    assert info1.rank == 1
    assert info1.slots[info1.rank] == 4 and info0.slots[info0.rank] == 2


def test_rendezvous_of_more_than_a_thousand_workers(client):
    n = 1234
    trial = create_trial(client, worker_count=n)
    # Registered through the API, highest rank first, so the last ids hold the low ranks.
    calls = [client.workers.RegisterWorker.future(register_req(trial.id, rank=r, address=f"h{r}:1", slots=r % 8 + 1))
             for r in reversed(range(n))]
    workers = {w.rank: w for w in (c.result(timeout=30) for c in calls)}
    for rank in (0, n - 1):
        info = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, workers[rank].id, 0), timeout=10)
        assert info.rank == rank
        assert list(info.addresses) == [f"h{r}:1" for r in range(n)]
        assert list(info.slots) == [r % 8 + 1 for r in range(n)]


def test_rendezvous_blocks_until_the_last_worker_registers(client):
    trial = create_trial(client, worker_count=2)
    w1 = register(client, trial.id, rank=1, address="h1:1", slots=4)
    pending = client.workers.GetRendezvousInfo.future(rendezvous_req(trial.id, w1.id, 30), timeout=30)
    w0 = register(client, trial.id, rank=0, address="h0:1", slots=2)
    info = pending.result(timeout=10)
    assert list(info.addresses) == ["h0:1", "h1:1"]
    assert list(info.slots) == [2, 4]
    assert info.rank == 1
    assert info.trial_run_id == trial.trial_run_id
    mine = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, w0.id), timeout=10)
    assert (mine.rank, list(mine.addresses)) == (0, ["h0:1", "h1:1"])


def test_rendezvous_is_still_waiting_before_the_last_worker(client):
    trial = create_trial(client, worker_count=2)
    w1 = register(client, trial.id, rank=1, address="h1:1")
    pending = client.workers.GetRendezvousInfo.future(rendezvous_req(trial.id, w1.id, 30), timeout=30)
    done = threading.Event()
    pending.add_done_callback(lambda _: done.set())
    # While a worker is missing, other calls go through and the wait continues.
    assert list_ids(client, trial_id=trial.id) == [w1.id]
    heartbeat(client, w1.id)
    assert not done.is_set()
    register(client, trial.id, rank=0, address="h0:1")
    assert pending.result(timeout=10).rank == 1


def test_rendezvous_incomplete_is_unavailable(client):
    trial = create_trial(client, worker_count=3)
    w = register(client, trial.id)
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, w.id, 0.2), timeout=10)
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert err.reason == "RENDEZVOUS_INCOMPLETE"
    assert err.metadata["registered"] == "1"
    assert err.metadata["expected"] == "3"


def test_rendezvous_zero_timeout_answers_at_once(client):
    trial = create_trial(client, worker_count=2)
    w = register(client, trial.id)
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, w.id, 0), timeout=10)
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert (err.metadata["registered"], err.metadata["expected"]) == ("1", "2")


def test_rendezvous_single_worker_default_count(client):
    trial = create_trial(client, worker_count=0)
    w = register(client, trial.id, address="solo:1", slots=8)
    info = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, w.id), timeout=10)
    assert (list(info.addresses), info.rank, list(info.slots)) == (["solo:1"], 0, [8])


def test_rendezvous_unknown_or_foreign_worker_is_not_found(client):
    trial = create_trial(client, worker_count=1)
    other = create_trial(client, "other")
    register(client, trial.id)
    foreign = register(client, other.id)
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, 999999, 0.2), timeout=10)
    assert err.code == grpc.StatusCode.NOT_FOUND
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, foreign.id, 0.2), timeout=10)
    assert err.code == grpc.StatusCode.NOT_FOUND
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(777777, foreign.id, 0.2), timeout=10)
    assert err.code == grpc.StatusCode.NOT_FOUND


def test_rendezvous_bad_arguments(client):
    trial = create_trial(client)
    w = register(client, trial.id)
    assert_invalid(error_of(client.workers.GetRendezvousInfo, rendezvous_req(0, w.id), timeout=10), "trial_id")
    assert_invalid(error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, 0), timeout=10), "worker_id")
    req = ws.GetRendezvousInfoRequest(trial_id=trial.id, worker_id=w.id, timeout=duration_pb2.Duration(seconds=-1))
    assert_invalid(error_of(client.workers.GetRendezvousInfo, req, timeout=10), "timeout")


def test_rendezvous_worker_of_old_run_is_not_found(client):
    trial = create_trial(client)
    old = register(client, trial.id)
    client.trials.RestartTrial(ts.RestartTrialRequest(id=trial.id))
    new = register(client, trial.id, address="new:1")
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, old.id, 0.2), timeout=10)
    assert err.code == grpc.StatusCode.NOT_FOUND
    info = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, new.id), timeout=10)
    assert (list(info.addresses), info.trial_run_id) == (["new:1"], new.trial_run_id)


def test_rendezvous_skips_failed_workers(client):
    trial = create_trial(client, worker_count=2)
    a = register(client, trial.id, rank=0, address="a:1")
    b = register(client, trial.id, rank=1, address="b:1")
    report(client, b.id, ERROR)
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, a.id, 0.2), timeout=10)
    assert err.code == grpc.StatusCode.UNAVAILABLE
    assert err.reason == "RENDEZVOUS_INCOMPLETE"
    # A rank outside 0..worker_count-1 cannot take part.
    stray = register(client, trial.id, rank=2, address="x:1")
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, stray.id), timeout=10)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and err.metadata["rank"] == "2"
    # The failed worker's rank is free for its replacement.
    c = register(client, trial.id, rank=1, address="c:1")
    info = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, a.id), timeout=10)
    assert list(info.addresses) == ["a:1", "c:1"]
    assert client.workers.GetRendezvousInfo(rendezvous_req(trial.id, c.id), timeout=10).rank == 1
    # The failed worker itself is refused.
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, b.id), timeout=10)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.metadata["worker_id"] == str(b.id)


def test_rendezvous_incomplete_counts_only_live_workers(client):
    trial = create_trial(client, worker_count=2)
    a = register(client, trial.id, rank=0)
    b = register(client, trial.id, rank=1)
    report(client, b.id, KILLED)
    err = error_of(client.workers.GetRendezvousInfo, rendezvous_req(trial.id, a.id, 0.2), timeout=10)
    assert err.code == grpc.StatusCode.UNAVAILABLE
    # One of the two workers is KILLED: only one has joined.
    assert (err.metadata["registered"], err.metadata["expected"]) == ("1", "2"), err.metadata


def test_rendezvous_rank_indexes_the_callers_own_entry(client):
    trial = create_trial(client, worker_count=3)
    workers = [register(client, trial.id, rank=r, address=f"h{r}:1", slots=r + 1) for r in (2, 0, 1)]
    for w in workers:
        info = client.workers.GetRendezvousInfo(rendezvous_req(trial.id, w.id), timeout=10)
        assert list(info.addresses) == ["h0:1", "h1:1", "h2:1"]
        assert list(info.slots) == [1, 2, 3]
        assert info.rank == w.rank
        assert info.addresses[info.rank] == w.address
        assert info.slots[info.rank] == w.slots


def test_a_state_report_keeps_its_message(client):
    trial = create_trial(client)
    worker = register(client, trial.id)
    report(client, worker.id, W.WORKER_STATE_RUNNING, "started")
    client.workers.ReportWorkerState(ws.ReportWorkerStateRequest(
        id=worker.id, state=W.WORKER_STATE_ERROR, message="exit code 137"))
    assert get_worker(client, worker.id).state_message == "exit code 137"
    err = error_of(client.workers.ReportWorkerState,
                   ws.ReportWorkerStateRequest(id=worker.id, state=W.WORKER_STATE_ERROR, message="x" * 4097))
    assert list(err.violations) == ["message"]
