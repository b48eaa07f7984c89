"""LogService through a real server: adding lines, scrolling, following,
downloading, and metrics extracted from lines by metric definitions."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2
from support import create_study, error_of
from support.trials import S, new_trial, report, trial_in
from trialplane.v1 import (
    log_pb2,
    log_service_pb2_grpc,
    metrics_service_pb2_grpc,
    study_pb2,
    trial_pb2,
)
from trialplane.v1 import (
    log_service_pb2 as ls,
)
from trialplane.v1 import (
    metrics_pb2 as mp,
)
from trialplane.v1 import (
    metrics_service_pb2 as ms,
)
from trialplane.v1 import (
    study_service_pb2 as ss,
)
from trialplane.v1 import (
    trial_service_pb2 as ts,
)

L = log_pb2
T0 = 1_800_000_000  # 2027-01-15T08:00:00Z
T0_TEXT = "2027-01-15T08:00:"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
HP = trial_pb2.ParameterValue
GOOD_HPS = {"lr": HP(double_value=0.01), "layers": HP(int_value=2), "optimizer": HP(string_value="adam")}
LEVELS = [L.LOG_LEVEL_TRACE, L.LOG_LEVEL_DEBUG, L.LOG_LEVEL_INFO, L.LOG_LEVEL_WARNING, L.LOG_LEVEL_ERROR,
          L.LOG_LEVEL_CRITICAL]


# --- helpers -----------------------------------------------------------------

def flat(pages):
    return [x for page in pages for x in page]


def stub(client):
    return log_service_pb2_grpc.LogServiceStub(client.channel)


def line(trial_id, i, message=None, level=L.LOG_LEVEL_INFO, worker="w0", nanos=0, **kw):
    return L.TaskLog(trial_id=trial_id, time=timestamp_pb2.Timestamp(seconds=T0 + i, nanos=nanos), level=level,
                     worker=worker, message=f"line {i}" if message is None else message, **kw)


def add(client, lines):
    return stub(client).AddLogs(ls.AddLogsRequest(logs=lines))


def list_logs(client, **kw):
    return stub(client).ListLogs(ls.ListLogsRequest(**kw))


def pages(client, page_token="", **kw):
    """Every page of a ListLogs scroll (from page_token on), as lists of
    messages; the last token is empty."""
    out, token = [], page_token
    for _ in range(1000):
        resp = list_logs(client, page_token=token, **kw)
        out.append([x.message for x in resp.logs])
        token = resp.next_page_token
        if not token:
            return out
    raise AssertionError("scroll never ended")


def messages(client, trial_id, **kw):
    return flat(pages(client, trial_id=trial_id, **kw))


def download(client, trial_id, fmt=""):
    return [c.chunk for c in stub(client).DownloadLogs(ls.DownloadLogsRequest(trial_id=trial_id, format=fmt))]


def history(client, trial_id, *names):
    return metrics_service_pb2_grpc.MetricsServiceStub(client.channel).GetMetricHistory(
        ms.GetMetricHistoryRequest(trial_ids=[trial_id], group="logs", names=list(names))).series


def study_trial(client, study, **fields):
    return client.trials.CreateTrial(ts.CreateTrialRequest(
        trial=trial_pb2.Trial(study_id=study.id, hyperparameters=GOOD_HPS, **fields)))


# --- AddLogs -------------------------------------------------------------------

def test_add_logs_round_trip(client):
    trial = new_trial(client)
    sent = [
        line(trial.id, i, f"message {i}", level=level, worker=f"host-{i % 2}", stream="stderr" if i % 2 else "stdout",
             rank=i, nanos=123_456_789 * (i % 2))
        for i, level in enumerate(LEVELS)
    ]
    resp = add(client, sent)
    assert (resp.added, resp.metric_points) == (6, 0)
    got = list_logs(client, trial_id=trial.id).logs
    assert len(got) == 6 and got[0].id > 0
    assert [x.id for x in got] == sorted({x.id for x in got})
    for i, (x, level) in enumerate(zip(got, LEVELS)):
        assert x.trial_id == trial.id
        assert x.level == level
        assert x.worker == f"host-{i % 2}"
        assert x.stream == ("stderr" if i % 2 else "stdout")
        assert x.rank == i
        assert x.message == f"message {i}"
        # Times are kept to the microsecond.
        assert (x.time.seconds, x.time.nanos) == (T0 + i, 123_456_000 * (i % 2))
    # Ids keep increasing across calls.
    add(client, [line(trial.id, 10, "later")])
    later = list_logs(client, trial_id=trial.id).logs[-1]
    assert later.message == "later" and later.id > got[-1].id


def test_add_logs_defaults(client):
    trial = new_trial(client)
    add(client, [L.TaskLog(trial_id=trial.id, message="bare")])
    (x,) = list_logs(client, trial_id=trial.id).logs
    assert x.level == L.LOG_LEVEL_INFO
    assert x.stream == "stdout" and x.worker == "" and x.rank == 0
    assert x.HasField("time") and x.time.ToMicroseconds() >= trial.create_time.ToMicroseconds()
    # The id a client sends is ignored; the server assigns it.
    add(client, [L.TaskLog(trial_id=trial.id, id=1_000_000, message="with id")])
    ids = [x.id for x in list_logs(client, trial_id=trial.id).logs]
    assert ids[1] == ids[0] + 1


def test_lines_of_several_trials_in_one_call(client):
    a, b = new_trial(client, "a"), new_trial(client, "b")
    resp = add(client, [line(a.id, 0, "a0"), line(b.id, 1, "b0"), line(a.id, 2, "a1")])
    assert resp.added == 3
    assert messages(client, a.id) == ["a0", "a1"]
    assert messages(client, b.id) == ["b0"]
    assert {x.trial_id for x in list_logs(client, trial_id=b.id).logs} == {b.id}


def test_unknown_trial_stores_nothing(client):
    trial = new_trial(client)
    err = error_of(add, client, [line(trial.id, 0), line(trial.id, 1), line(987654, 2)])
    assert err.code == grpc.StatusCode.NOT_FOUND and err.reason == "RESOURCE_NOT_FOUND"
    assert err.metadata == {"resource": "trial", "id": "987654"}
    assert messages(client, trial.id) == []
    err = error_of(add, client, [line(987654, 0)])
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert messages(client, trial.id) == []


def test_a_trial_deleted_before_the_write_stores_nothing(client, server, monkeypatch):
    keep, doomed = new_trial(client, "keep"), new_trial(client, "doomed")
    storage = server.app.storage
    ingest = storage.ingest_metrics

    async def delete_first(batch, key=None):
        # A DeleteTrial that lands between AddLogs' arrival and its write.
        await storage.delete_trial(doomed.id, lambda t: None)
        return await ingest(batch, key)

    monkeypatch.setattr(storage, "ingest_metrics", delete_first)
    err = error_of(add, client, [line(keep.id, 0), line(doomed.id, 1), line(keep.id, 2)])
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata == {"resource": "trial", "id": str(doomed.id)}
    assert messages(client, keep.id) == []


@pytest.mark.parametrize("bad, field", [
    ({"level": 99}, "level"),
    ({"level": -1}, "level"),
    ({"trial_id": 0}, "trial_id"),
    ({"trial_id": -5}, "trial_id"),
    ({"message": "x" * 65537}, "message"),
    ({"worker": "w" * 257}, "worker"),
    ({"time": timestamp_pb2.Timestamp(seconds=T0, nanos=-1)}, "time"),
])
@pytest.mark.parametrize("position", [0, 2])
def test_bad_lines_are_named_and_nothing_is_stored(client, bad, field, position):
    trial = new_trial(client)
    batch = [line(trial.id, i) for i in range(3)]
    for key, value in bad.items():
        if key == "time":
            batch[position].time.CopyFrom(value)
        else:
            setattr(batch[position], key, value)
    err = error_of(add, client, batch)
    assert err.code == INVALID and err.reason == "INVALID_FIELD"
    assert f"logs[{position}].{field}" in err.violations
    assert messages(client, trial.id) == []


def test_at_most_ten_thousand_lines_per_call(client):
    trial = new_trial(client)
    err = error_of(add, client, [line(trial.id, 0, "x")] * 10_001)
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "10000" in err.message
    assert err.reason == "LIMIT_EXCEEDED"
    assert messages(client, trial.id) == []
    assert add(client, [line(trial.id, 0, "x")] * 10_000).added == 10_000
    assert len(list_logs(client, trial_id=trial.id, page_size=5000).logs) == 5000


# --- ListLogs ------------------------------------------------------------------

def test_scroll_from_head_and_tail(client):
    trial = new_trial(client)
    other = new_trial(client, "other")
    add(client, [line(other.id, 0, "elsewhere")])
    add(client, [line(trial.id, i) for i in range(10)])
    add(client, [line(other.id, 1, "elsewhere too")])

    head = pages(client, trial_id=trial.id, page_size=3)
    assert head == [["line 0", "line 1", "line 2"], ["line 3", "line 4", "line 5"], ["line 6", "line 7", "line 8"],
                    ["line 9"]]
    tail = pages(client, trial_id=trial.id, page_size=3, from_tail=True)
    assert tail == [["line 9", "line 8", "line 7"], ["line 6", "line 5", "line 4"], ["line 3", "line 2", "line 1"],
                    ["line 0"]]
    for scroll in (head, tail):
        seen = flat(scroll)
        assert len(seen) == len(set(seen)) == 10
    # Ids follow the same order.
    ids = [x.id for x in list_logs(client, trial_id=trial.id).logs]
    assert ids == sorted(ids) and len(set(ids)) == 10
    tail_ids = [x.id for x in list_logs(client, trial_id=trial.id, from_tail=True).logs]
    assert tail_ids == ids[::-1]


def test_scroll_that_divides_evenly_ends_without_an_empty_page(client):
    trial = new_trial(client)
    add(client, [line(trial.id, i) for i in range(9)])
    assert [len(p) for p in pages(client, trial_id=trial.id, page_size=3)] == [3, 3, 3]
    assert [len(p) for p in pages(client, trial_id=trial.id, page_size=3, from_tail=True)] == [3, 3, 3]
    assert pages(client, trial_id=trial.id, page_size=9) == [[f"line {i}" for i in range(9)]]


def test_empty_log(client):
    trial = new_trial(client)
    resp = list_logs(client, trial_id=trial.id)
    assert list(resp.logs) == [] and resp.next_page_token == ""
    assert list_logs(client, trial_id=trial.id, from_tail=True).next_page_token == ""


def test_scrolls_and_new_lines(client):
    trial = new_trial(client)
    add(client, [line(trial.id, i) for i in range(5)])
    head = list_logs(client, trial_id=trial.id, page_size=3)
    tail = list_logs(client, trial_id=trial.id, page_size=3, from_tail=True)
    add(client, [line(trial.id, 5, "new 1"), line(trial.id, 6, "new 2")])
    # From the head, the new lines come at the end of the scroll...
    rest = pages(client, trial_id=trial.id, page_size=3, page_token=head.next_page_token)
    assert [x.message for x in head.logs] + flat(rest) == [f"line {i}" for i in range(5)] + ["new 1", "new 2"]
    # ...from the tail, the scroll keeps going back from where it was.
    assert [x.message for x in tail.logs] == ["line 4", "line 3", "line 2"]
    rest = pages(client, trial_id=trial.id, page_size=3, from_tail=True, page_token=tail.next_page_token)
    assert rest == [["line 1", "line 0"]]


def test_filters_by_level_and_worker(client):
    trial = new_trial(client)
    plan = [("a", L.LOG_LEVEL_INFO), ("b", L.LOG_LEVEL_ERROR), ("a", L.LOG_LEVEL_ERROR), ("b", L.LOG_LEVEL_WARNING),
            ("a", L.LOG_LEVEL_CRITICAL), ("b", L.LOG_LEVEL_ERROR), ("a", L.LOG_LEVEL_DEBUG)]
    add(client, [line(trial.id, i, f"{w}{i}", level=lv, worker=w) for i, (w, lv) in enumerate(plan)])
    assert messages(client, trial.id, levels=[L.LOG_LEVEL_ERROR]) == ["b1", "a2", "b5"]
    assert messages(client, trial.id, levels=[L.LOG_LEVEL_ERROR, L.LOG_LEVEL_CRITICAL]) == ["b1", "a2", "a4", "b5"]
    assert messages(client, trial.id, levels=[L.LOG_LEVEL_TRACE]) == []
    assert messages(client, trial.id, worker="a") == ["a0", "a2", "a4", "a6"]
    assert messages(client, trial.id, worker="b") == ["b1", "b3", "b5"]
    assert messages(client, trial.id, worker="c") == []
    assert messages(client, trial.id, worker="b", levels=[L.LOG_LEVEL_ERROR]) == ["b1", "b5"]
    assert pages(client, trial_id=trial.id, worker="a", page_size=3) == [["a0", "a2", "a4"], ["a6"]]
    assert pages(client, trial_id=trial.id, worker="a", page_size=3, from_tail=True) == [["a6", "a4", "a2"], ["a0"]]
    assert pages(client, trial_id=trial.id, levels=[L.LOG_LEVEL_ERROR], page_size=2, from_tail=True) == [
        ["b5", "a2"], ["b1"]]


@pytest.mark.parametrize("levels, field", [([0], "levels[0]"), ([L.LOG_LEVEL_INFO, 42], "levels[1]")])
def test_bad_level_filter(client, levels, field):
    trial = new_trial(client)
    err = error_of(list_logs, client, trial_id=trial.id, levels=levels)
    assert err.code == INVALID and field in err.violations


def test_list_errors(client):
    err = error_of(list_logs, client, trial_id=0)
    assert err.code == INVALID and "trial_id" in err.violations
    err = error_of(list_logs, client, trial_id=555555)
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata == {"resource": "trial", "id": "555555"}
    trial = new_trial(client)
    err = error_of(list_logs, client, trial_id=trial.id, page_size=-1)
    assert err.code == INVALID and "page_size" in err.violations


def test_page_tokens(client):
    trial = new_trial(client)
    other = new_trial(client, "other")
    add(client, [line(trial.id, i, worker="a") for i in range(4)] + [line(other.id, 9)])
    token = list_logs(client, trial_id=trial.id, page_size=2).next_page_token
    assert token
    for bad in ["zzz", "e30", token[:-4], "%%%"]:
        err = error_of(list_logs, client, trial_id=trial.id, page_size=2, page_token=bad)
        assert err.code == INVALID and err.reason == "INVALID_PAGE_TOKEN", bad
        assert "page_token" in err.violations
    for changed in [{"trial_id": other.id}, {"from_tail": True}, {"worker": "a"}, {"levels": [L.LOG_LEVEL_INFO]}]:
        kw = {"trial_id": trial.id, "page_size": 2, "page_token": token, **changed}
        err = error_of(list_logs, client, **kw)
        assert err.code == INVALID and err.reason == "INVALID_PAGE_TOKEN", changed
    # Another page size is fine.
    assert [x.message for x in list_logs(client, trial_id=trial.id, page_size=10, page_token=token).logs] == [
        "line 2", "line 3"]


# --- WatchLogs -----------------------------------------------------------------

def watch(client, trial_id, after_id=0):
    return stub(client).WatchLogs(ls.WatchLogsRequest(trial_id=trial_id, after_id=after_id), timeout=60)


def take(stream, n):
    """The next n lines of a watch, over as many responses as they come in."""
    out = []
    while len(out) < n:
        out.extend(next(stream).logs)
    assert len(out) == n, [x.message for x in out]
    return out


def test_watch_existing_then_new_lines_until_the_trial_ends(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    add(client, [line(trial.id, i) for i in range(4)])
    add(client, [line(trial.id, 99, "other worker", worker="w1")])
    existing = list_logs(client, trial_id=trial.id).logs
    follow = watch(client, trial.id, after_id=existing[1].id)
    got = take(follow, 3)
    assert [x.message for x in got] == ["line 2", "line 3", "other worker"]
    assert [x.id for x in got] == [x.id for x in existing[2:]]
    assert got[2].worker == "w1" and got[0].trial_id == trial.id
    add(client, [line(trial.id, 10, "new 1"), line(trial.id, 11, "new 2", level=L.LOG_LEVEL_ERROR)])
    new = take(follow, 2)
    assert [x.message for x in new] == ["new 1", "new 2"]
    assert new[1].level == L.LOG_LEVEL_ERROR and new[0].id > got[-1].id
    add(client, [line(trial.id, 12, "new 3")])
    assert [x.message for x in take(follow, 1)] == ["new 3"]
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    assert list(follow) == []


def test_watch_from_the_start(client):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    add(client, [line(trial.id, i) for i in range(3)])
    follow = watch(client, trial.id)
    assert [x.message for x in take(follow, 3)] == ["line 0", "line 1", "line 2"]
    report(client, trial.id, S.TRIAL_STATE_ERROR)
    assert list(follow) == []


def test_watch_a_trial_that_already_ended(client):
    trial = trial_in(client, S.TRIAL_STATE_COMPLETED)
    add(client, [line(trial.id, i) for i in range(3)])
    assert [x.message for r in watch(client, trial.id) for x in r.logs] == ["line 0", "line 1", "line 2"]
    last = list_logs(client, trial_id=trial.id).logs[-1].id
    assert [x.message for r in watch(client, trial.id, after_id=last) for x in r.logs] == []
    killed = trial_in(client, S.TRIAL_STATE_CANCELED, "killed")
    assert list(watch(client, killed.id)) == []


def test_watch_only_the_named_trial(client):
    trial = new_trial(client)
    other = new_trial(client, "other")
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    follow = watch(client, trial.id)
    add(client, [line(other.id, 0, "not mine"), line(trial.id, 1, "mine")])
    got = take(follow, 1)
    assert [x.message for x in got] == ["mine"]
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    assert list(follow) == []


def test_watch_errors(client):
    err = error_of(lambda: list(watch(client, 0)))
    assert err.code == INVALID and "trial_id" in err.violations
    err = error_of(lambda: list(watch(client, 424242)))
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata["resource"] == "trial"


def test_watch_delivers_lines_written_just_before_the_trial_ended(client, server):
    trial = new_trial(client)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    storage = server.app.storage
    real_list_logs = storage.list_logs
    read_done, go_on = threading.Event(), threading.Event()

    async def slow_list_logs(*args, **kwargs):
        # The reader thread took its snapshot; the writes below land before the
        # stream gets to look at it (what a busy reader pool does anyway).
        rows = await real_list_logs(*args, **kwargs)
        if not rows and not read_done.is_set():
            read_done.set()
            await asyncio.to_thread(go_on.wait, 30)
        return rows

    storage.list_logs = slow_list_logs
    try:
        follow = watch(client, trial.id)
        with ThreadPoolExecutor(1) as pool:
            watched = pool.submit(lambda: [x.message for r in follow for x in r.logs])
            assert read_done.wait(30)
            add(client, [line(trial.id, 0, "last words")])
            report(client, trial.id, S.TRIAL_STATE_COMPLETED)
            go_on.set()
            result = watched.result(60)
    finally:
        go_on.set()
        storage.list_logs = real_list_logs
    assert messages(client, trial.id) == ["last words"]
    assert result == ["last words"]


# --- DownloadLogs --------------------------------------------------------------

def test_download_default_and_custom_formats(client):
    trial = new_trial(client)
    add(client, [
        line(trial.id, 0, "hello", worker="w1"),
        line(trial.id, 1, "careful", level=L.LOG_LEVEL_WARNING, nanos=250_000_000, stream="stderr", rank=3),
        L.TaskLog(trial_id=trial.id, time=timestamp_pb2.Timestamp(seconds=T0 + 62, nanos=999_999_999),
                  level=L.LOG_LEVEL_CRITICAL, worker="w2", message="boom {not a field}"),
    ])
    text = b"".join(download(client, trial.id)).decode()
    assert text == (
        f"{T0_TEXT}00.000+00:00 w1 INFO hello\n"
        f"{T0_TEXT}01.250+00:00 w0 WARNING careful\n"
        "2027-01-15T08:01:02.999+00:00 w2 CRITICAL boom {not a field}\n"
    )
    assert b"".join(download(client, trial.id, "{level}|{worker}|{msg}")) == (
        b"INFO|w1|hello\nWARNING|w0|careful\nCRITICAL|w2|boom {not a field}\n")
    ids = [x.id for x in list_logs(client, trial_id=trial.id).logs]
    assert b"".join(download(client, trial.id, "{trial_id}/{id} [{stream}:{rank}] {{{msg}}}")).decode() == (
        f"{trial.id}/{ids[0]} [stdout:0] {{hello}}\n"
        f"{trial.id}/{ids[1]} [stderr:3] {{careful}}\n"
        f"{trial.id}/{ids[2]} [stdout:0] {{boom {{not a field}}}}\n"
    )
    assert b"".join(download(client, trial.id, "{msg!r:>12.4}")) == b"        'hel\n        'car\n        'boo\n"
    assert b"".join(download(client, trial.id, "no fields")) == b"no fields\n" * 3


def test_download_of_an_empty_log(client):
    trial = new_trial(client)
    assert download(client, trial.id) == []


def test_download_in_chunks_of_a_long_log(client):
    trial = new_trial(client)
    n = 12_000
    for start in range(0, n, 6_000):
        add(client, [line(trial.id, i, f"message number {i:06d} " + "x" * 40) for i in range(start, start + 6_000)])
    chunks = download(client, trial.id, "{msg}")
    assert len(chunks) > 1
    assert all(len(c) < 70 * 1024 for c in chunks)
    assert b"".join(chunks).decode() == "".join(f"message number {i:06d} " + "x" * 40 + "\n" for i in range(n))


@pytest.mark.parametrize("fmt", ["{nope}", "{", "}", "{0}", "{}", "{msg.upper}", "{level[0]}", "{msg} {asctime"])
def test_download_with_a_bad_format(client, fmt):
    trial = new_trial(client)
    add(client, [line(trial.id, 0)])
    err = error_of(download, client, trial.id, fmt)
    assert err.code == INVALID and err.reason == "INVALID_FIELD"
    assert list(err.violations) == ["format"]


@pytest.mark.parametrize("fmt", ["{msg:{nope}}", "{asctime:%Y}", "{rank:s}", "{msg!x}", "{level:d}"])
def test_download_with_a_bad_conversion_or_spec(client, fmt):
    trial = new_trial(client)
    add(client, [line(trial.id, 0)])
    err = error_of(download, client, trial.id, fmt)
    assert err.code == INVALID and "format" in err.violations


def test_download_errors(client):
    err = error_of(download, client, 0)
    assert err.code == INVALID and "trial_id" in err.violations
    err = error_of(download, client, 31337)
    assert err.code == grpc.StatusCode.NOT_FOUND and err.metadata["resource"] == "trial"


# --- metrics from log lines ----------------------------------------------------

def test_study_metric_definitions_turn_lines_into_points(client):
    study = create_study(client, "log-metrics",
                         metric_definitions=[study_pb2.MetricDefinition(name="loss", regex=r"loss=([0-9.]+)")])
    trial = study_trial(client, study)
    resp = add(client, [line(trial.id, 0, "step 1 loss=0.5"), line(trial.id, 1, "noise"),
                        line(trial.id, 2, "loss=0.25")])
    assert (resp.added, resp.metric_points) == (3, 2)
    (loss,) = history(client, trial.id, "loss")
    assert (loss.trial_id, loss.group, loss.name) == (trial.id, "logs", "loss")
    assert list(loss.values) == [0.5, 0.25]
    assert list(loss.steps) == [0, 1]
    assert list(loss.times) == [T0 * 1_000_000, (T0 + 2) * 1_000_000]
    # Without a step in the line, points keep counting across calls.
    resp = add(client, [line(trial.id, 3, "loss=0.125"), line(trial.id, 4, "nothing to see")])
    assert (resp.added, resp.metric_points) == (2, 1)
    (loss,) = history(client, trial.id, "loss")
    assert list(loss.values) == [0.5, 0.25, 0.125] and list(loss.steps) == [0, 1, 2]
    # The lines themselves are stored as sent.
    assert messages(client, trial.id) == ["step 1 loss=0.5", "noise", "loss=0.25", "loss=0.125", "nothing to see"]


def test_lines_without_matches_make_no_points(client):
    study = create_study(client, "quiet", metric_definitions=[study_pb2.MetricDefinition(name="loss", regex=r"loss=([0-9.]+)")])
    trial = study_trial(client, study)
    resp = add(client, [line(trial.id, 0, "loss=abc"), line(trial.id, 1, "accuracy=0.9")])
    assert (resp.added, resp.metric_points) == (2, 0)
    (loss,) = history(client, trial.id, "loss")
    assert list(loss.values) == []
    plain = new_trial(client, "plain")
    assert add(client, [line(plain.id, 0, "loss=0.5")]).metric_points == 0


def test_trial_metric_definitions_with_a_step_group(client):
    study = create_study(client, "steps",
                         metric_definitions=[study_pb2.MetricDefinition(name="loss", regex=r"loss=([0-9.]+)")])
    trial = study_trial(client, study, metric_definitions=[
        study_pb2.MetricDefinition(name="acc", regex=r"step (?P<step>\d+) acc=(?P<value>[0-9.]+)"),
        study_pb2.MetricDefinition(name="lr", regex=r"lr=([0-9.e-]+) at iter (?P<step>\d+)"),
    ])
    resp = add(client, [
        line(trial.id, 0, "step 40 acc=0.75"),
        line(trial.id, 1, "step 80 acc=0.875 loss=0.5"),
        line(trial.id, 2, "lr=0.001 at iter 7"),
        line(trial.id, 3, "step x acc=0.9"),
    ])
    assert (resp.added, resp.metric_points) == (4, 4)
    acc, lr, loss = history(client, trial.id, "acc", "lr", "loss")
    assert list(acc.steps) == [40, 80] and list(acc.values) == [0.75, 0.875]
    assert list(lr.steps) == [7] and list(lr.values) == [0.001]
    # The step a line names is the step of every value parsed from it.
    assert list(loss.steps) == [80] and list(loss.values) == [0.5]


def test_parsed_objective_lands_at_the_reported_step_and_ranks_the_trial(client):
    from trialplane.v1 import metrics_pb2 as mp
    from trialplane.v1 import metrics_service_pb2 as ms
    from trialplane.v1 import metrics_service_pb2_grpc
    study = create_study(client, "objective-in-logs", metric_definitions=[
        study_pb2.MetricDefinition(name="val_loss", regex=r"val_loss=([0-9.e+-]+)"),
        study_pb2.MetricDefinition(name="tput", regex=r"tput=([0-9.]+)")])
    trial = study_trial(client, study)
    report(client, trial.id, S.TRIAL_STATE_RUNNING)
    metrics = metrics_service_pb2_grpc.MetricsServiceStub(client.channel)
    values = mp.Metrics()
    values.avg_metrics.update({"loss": 0.9})
    metrics.ReportMetrics(ms.ReportMetricsRequest(
        metrics=mp.TrialMetrics(trial_id=trial.id, steps_completed=120, metrics=values), group="training"))
    add(client, [line(trial.id, 0, "epoch done val_loss=2.5e-01 tput=300")])
    report(client, trial.id, S.TRIAL_STATE_RUNNING, steps_completed=200)
    add(client, [line(trial.id, 1, "val_loss=0.5")])
    val, tput = history(client, trial.id, "val_loss", "tput")
    assert (list(val.steps), list(val.values)) == ([120, 200], [0.25, 0.5])
    assert list(tput.steps) == [120]
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert got.searcher_metric_value == 0.25
    assert got.best_validation.total_batches == 120 and got.best_validation.metrics.avg_metrics["val_loss"] == 0.25
    assert got.latest_validation.total_batches == 200


def test_metric_definitions_of_a_trial_without_a_study(client):
    trial = new_trial(client, metric_definitions=[
        study_pb2.MetricDefinition(name="tput", regex=r"epoch=(?P<step>\d+) .*throughput=(?P<value>\d+)")])
    resp = add(client, [line(trial.id, 0, "epoch=3 batch=9 throughput=1200"), line(trial.id, 1, "epoch=4 throughput=1300")])
    assert resp.metric_points == 2
    (tput,) = history(client, trial.id, "tput")
    assert list(tput.steps) == [3, 4] and list(tput.values) == [1200.0, 1300.0]


def test_no_points_from_a_refused_batch(client):
    study = create_study(client, "refused", metric_definitions=[study_pb2.MetricDefinition(name="loss", regex=r"loss=([0-9.]+)")])
    trial = study_trial(client, study)
    err = error_of(add, client, [line(trial.id, 0, "loss=1.5"), line(999999, 1, "loss=2")])
    assert err.code == grpc.StatusCode.NOT_FOUND
    (loss,) = history(client, trial.id, "loss")
    assert list(loss.values) == []
    assert add(client, [line(trial.id, 2, "loss=3")]).metric_points == 1
    (loss,) = history(client, trial.id, "loss")
    assert list(loss.values) == [3.0] and list(loss.steps) == [0]


@pytest.mark.parametrize("definitions, field, words", [
    ([("loss", r"loss=([0-9.]+")], "study.metric_definitions[0].regex", "does not compile"),
    ([("ok", r"ok=(\d+)"), ("bad", r"(?P<x")], "study.metric_definitions[1].regex", "does not compile"),
    ([("loss", r"loss=\d+")], "study.metric_definitions[0].regex", "capture group"),
    ([("loss", "")], "study.metric_definitions[0].regex", "empty"),
    ([("", r"loss=(\d+)")], "study.metric_definitions[0].name", "empty"),
])
def test_bad_study_metric_definitions(client, definitions, field, words):
    defs = [study_pb2.MetricDefinition(name=n, regex=r) for n, r in definitions]
    err = error_of(create_study, client, "bad-defs", metric_definitions=defs)
    assert err.code == INVALID and err.reason == "INVALID_FIELD"
    assert words in err.violations[field]
    assert len(client.studies.ListStudies(ss.ListStudiesRequest()).studies) == 0


def test_bad_metric_definitions_on_update_and_on_trials(client):
    study = create_study(client, "good-defs")
    err = error_of(client.studies.UpdateStudy, ss.UpdateStudyRequest(
        study=study_pb2.Study(id=study.id, metric_definitions=[study_pb2.MetricDefinition(name="x", regex="[")]),
        update_mask=field_mask_pb2.FieldMask(paths=["metric_definitions"])))
    assert err.code == INVALID and "does not compile" in err.violations["study.metric_definitions[0].regex"]
    err = error_of(new_trial, client, "t", metric_definitions=[study_pb2.MetricDefinition(name="x", regex="(a")])
    assert err.code == INVALID and "does not compile" in err.violations["trial.metric_definitions[0].regex"]


def test_study_definitions_changed_by_update_apply_to_new_lines(client):
    study = create_study(client, "later-defs")
    trial = study_trial(client, study)
    assert add(client, [line(trial.id, 0, "loss=0.9")]).metric_points == 0
    client.studies.UpdateStudy(ss.UpdateStudyRequest(
        study=study_pb2.Study(id=study.id, metric_definitions=[study_pb2.MetricDefinition(name="loss", regex=r"loss=([0-9.]+)")]),
        update_mask=field_mask_pb2.FieldMask(paths=["metric_definitions"])))
    assert add(client, [line(trial.id, 1, "loss=0.8")]).metric_points == 1
    (loss,) = history(client, trial.id, "loss")
    assert list(loss.values) == [0.8]


# --- retention ----------------------------------------------------------------

def test_retention_deletes_old_log_lines_in_batches(clocked_client, clocked_server, clock, monkeypatch):
    client = clocked_client
    day_us = 86_400_000_000
    now = clock()

    def at(trial_id, us, message):
        return L.TaskLog(trial_id=trial_id, time=timestamp_pb2.Timestamp(seconds=us // 1_000_000), message=message)

    short = new_trial(client, "short", log_retention_days=1)
    forever = new_trial(client, "forever", log_retention_days=-1)
    default = new_trial(client, "default")  # the server default, 30 days
    for trial in (short, forever, default):
        add(client, [at(trial.id, now - 3 * day_us + i * 1_000_000, f"old {i}") for i in range(5)]
            + [at(trial.id, now - 1_000_000, "fresh")])
    # Debug events are not covered by log_retention_days and stay.
    event = ms.AddEventsRequest(events=[mp.TrialEventItem(
        trial_id=short.id, time=timestamp_pb2.Timestamp(seconds=(now - 3 * day_us) // 1_000_000),
        vector=mp.VectorEvent(metric="hist", values=[1.0]))])
    metrics_service_pb2_grpc.MetricsServiceStub(client.channel).AddEvents(event)
    monkeypatch.setattr(clocked_server.app.retention, "BATCH", 2)
    assert clocked_server.call(clocked_server.app.retention.sweep()) == 5
    assert messages(client, short.id) == ["fresh"]
    assert messages(client, forever.id) == [f"old {i}" for i in range(5)] + ["fresh"]
    assert messages(client, default.id) == [f"old {i}" for i in range(5)] + ["fresh"]
    events = metrics_service_pb2_grpc.MetricsServiceStub(client.channel).ListDebugEvents(
        ms.ListDebugEventsRequest(trial_id=short.id)).events
    assert len(events) == 1
    clock.advance(28 * 86_400)
    assert clocked_server.call(clocked_server.app.retention.sweep()) == 6
    assert messages(client, short.id) == []
    assert messages(client, default.id) == ["fresh"]
    assert messages(client, forever.id) == [f"old {i}" for i in range(5)] + ["fresh"]
