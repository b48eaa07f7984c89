"""One-point ReportMetrics acknowledged from the report journal: durable across
SIGKILL, replayed at start-up, deduplicated while waiting to be stored, and
visible to every read that follows the acknowledgement."""

import asyncio
import signal
import threading
import time

import grpc
import pytest
from support import Client, ServerProcess, error_of, start_server
from support.trials import S, report
from test_metrics_api import history, req, running_trial, stub
from trialplane.server.domain import metrics as m
from trialplane.server.domain.models import Trial
from trialplane.server.storage.factory import open_storage
from trialplane.server.storage.journal import (
    HEADER,
    Journal,
    JournalBusy,
    JournalFull,
)
from trialplane.server.storage.journaled import encode
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import trial_service_pb2 as ts

# The journal is a file beside a SQLite database.
pytestmark = pytest.mark.sqlite_only


def loss_report(trial_id, step, run=0, report_time=0) -> m.ReportDraft:
    return m.ReportDraft(trial_id=trial_id, trial_run_id=run, group="training", steps=step, report_time=report_time,
                         metrics={"loss": float(step)})


def journaled(db_path) -> list[bytes]:
    journal = Journal(f"{db_path}-reports")
    try:
        return journal.records()
    finally:
        journal.close()


def test_every_acknowledged_report_survives_sigkill(db_path):
    server = ServerProcess(db_path)
    client = Client.connect(server.address)
    trial = running_trial(client)
    for step in range(1, 301):
        assert stub(client).ReportMetrics(req(trial.id, step, loss=float(step), acc=step / 300)).created
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    client.channel.close()

    again = ServerProcess(db_path)
    try:
        c2 = Client.connect(again.address)
        series = history(c2, [trial.id], ["loss", "acc"]).series
        assert [list(s.steps) for s in series] == [list(range(1, 301))] * 2
        assert list(series[0].values) == [float(i) for i in range(1, 301)]
        summaries = stub(c2).GetLatestMetrics(ms.GetLatestMetricsRequest(trial_ids=[trial.id], group="training")).summaries
        assert {x.name: (x.count, x.last, x.last_step) for x in summaries} == {
            "loss": (300, 300.0, 300), "acc": (300, 1.0, 300)}
        # A retry of an acknowledged report after the restart is still a retry.
        assert not stub(c2).ReportMetrics(req(trial.id, 300, loss=300.0, acc=1.0)).created
        c2.channel.close()
    finally:
        again.terminate()
    assert journaled(db_path) == []


def test_start_up_stores_what_the_journal_holds_and_keeps_what_it_cannot_read(db_path):
    server = start_server(db_path)
    client = Client.connect(server.address)
    trial = running_trial(client)
    assert stub(client).ReportMetrics(req(trial.id, 1, loss=1.0)).created
    client.channel.close()
    server.stop()

    # As a process killed between acknowledging and storing leaves it: step 1
    # (stored already), steps 2 and 3, a record that does not decode and half
    # of a last record.
    journal = Journal(f"{db_path}-reports")
    for step in (1, 2, 3):
        journal.append(encode(loss_report(trial.id, step, run=1, report_time=1_700_000_000_000_000 + step)))
    journal.append(b"not a report")
    torn_at = journal.size
    journal.close()
    with open(f"{db_path}-reports", "r+b") as f:
        f.seek(torn_at)
        f.write(HEADER.pack(64, 1, 1234) + b'{"torn"')

    server = start_server(db_path)
    try:
        client = Client.connect(server.address)
        (series,) = history(client, [trial.id], ["loss"]).series
        assert list(series.steps) == [1, 2, 3]
        assert list(series.values) == [1.0, 2.0, 3.0]
        assert list(series.times)[1:] == [1_700_000_000_000_002, 1_700_000_000_000_003]
        # The record it could not read is not thrown away silently.
        (kept,) = db_path.parent.glob("*-reports.unreadable-*")
        assert kept.read_bytes().count(b"not a report") == 1
        # While the server runs, the journal is its own.
        with pytest.raises(JournalBusy):
            journaled(db_path)
        client.channel.close()
    finally:
        server.stop()
    assert journaled(db_path) == []


def test_retries_of_reports_not_stored_yet_are_recognised(client):
    trial = running_trial(client)
    s = stub(client)
    # Back to back, the first is still waiting in the journal when the retry comes.
    assert s.ReportMetrics(req(trial.id, 10, loss=1.0)).created
    assert not s.ReportMetrics(req(trial.id, 10, loss=1.0)).created
    assert s.ReportMetrics(req(trial.id, 11, loss=2.0, request_id="job-7/11")).created
    assert not s.ReportMetrics(req(trial.id, 11, loss=2.0, request_id="job-7/11")).created
    assert error_of(s.ReportMetrics, req(trial.id, 12, loss=3.0, request_id="job-7/11")).reason == "REQUEST_ID_REUSED"
    # An older step that was never reported is new; a second time it is not.
    assert s.ReportMetrics(req(trial.id, 5, loss=0.5)).created
    assert not s.ReportMetrics(req(trial.id, 5, loss=0.5)).created
    (series,) = history(client, [trial.id], ["loss"]).series
    assert (list(series.steps), list(series.values)) == ([5, 10, 11], [0.5, 1.0, 2.0])


def test_reports_then_state_changes_apply_in_order(client):
    trial = running_trial(client)
    s = stub(client)
    for step in range(1, 6):
        s.ReportMetrics(req(trial.id, step, loss=float(step)))
    report(client, trial.id, S.TRIAL_STATE_COMPLETED)
    err = error_of(s.ReportMetrics, req(trial.id, 6, loss=6.0))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    got = client.trials.GetTrial(ts.GetTrialRequest(id=trial.id))
    assert [(x.name, x.count) for x in got.summary_metrics] == [("loss", 5)]
    # A new run reported right behind journaled reports archives them in order.
    other = running_trial(client, "restarted")
    for step in range(10, 101, 10):
        s.ReportMetrics(req(other.id, step, run=1, loss=float(step)))
    client.trials.RestartTrial(ts.RestartTrialRequest(id=other.id))
    assert s.ReportMetrics(req(other.id, 35, run=2, loss=0.35)).created
    (series,) = history(client, [other.id], ["loss"]).series
    assert list(series.steps) == [10, 20, 30, 35] and list(series.trial_run_ids) == [1, 1, 1, 2]


def test_unknown_trial_and_stale_run_still_refused(client):
    s = stub(client)
    assert error_of(s.ReportMetrics, req(999_999, 1, loss=1.0)).code == grpc.StatusCode.NOT_FOUND
    trial = running_trial(client)
    err = error_of(s.ReportMetrics, req(trial.id, 1, run=7, loss=1.0))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION


def test_journal_reads_only_what_was_written_since_it_was_emptied(tmp_path):
    path = str(tmp_path / "journal")
    journal = Journal(path, capacity=4096)
    for i in range(5):
        journal.append(f"old-{i}".encode())
    journal.clear()
    journal.append(b"new-0")
    journal.close()
    # The older records after the new one are of an earlier generation.
    again = Journal(path, capacity=4096)
    assert again.records() == [b"new-0"]
    again.append(b"new-1")
    with pytest.raises(JournalFull):
        again.append(bytes(4096))
    assert again.records() == [b"new-0", b"new-1"]
    third = again.append(b"new-2")
    again.stored_until(third)
    again.close()
    # What is marked stored is not replayed.
    again = Journal(path, capacity=4096)
    assert again.records() == [b"new-2"]
    again.reset()
    assert again.records() == []
    again.close()


def test_reports_wait_out_a_full_database_and_none_is_lost(db_path):
    server = start_server(db_path)
    try:
        client = Client.connect(server.address)
        trial = running_trial(client)
        s = stub(client)
        assert s.ReportMetrics(req(trial.id, 1, loss=1.0)).created
        history(client, [trial.id], ["loss"])  # stored
        writer = server.app.storage.inner.engine.writer_connection

        async def cap(limit=None):
            (pages,) = writer.execute("PRAGMA page_count").fetchone()
            writer.execute(f"PRAGMA max_page_count = {limit or pages}")

        server.call(cap())
        # Acknowledged from the journal; storing them fails: the database is full.
        for step in range(2, 22):
            assert s.ReportMetrics(req(trial.id, step, loss=float(step), **{f"m{k}": 1.0 for k in range(30)})).created
        time.sleep(0.4)
        threading.Timer(1.5, lambda: server.call(cap(1 << 30))).start()
        # This one waits until the earlier ones are stored, then is stored itself.
        assert s.ReportMetrics(req(trial.id, 22, loss=22.0)).created
        (series,) = history(client, [trial.id], ["loss"]).series
        assert list(series.steps) == list(range(1, 23))

        # A database that stays full answers UNAVAILABLE rather than hanging.
        server.call(cap())
        for step in range(23, 43):
            s.ReportMetrics(req(trial.id, step, loss=float(step), **{f"m{k}": 1.0 for k in range(30)}))
        time.sleep(0.4)
        err = error_of(history, client, [trial.id], ["loss"])
        assert err.code == grpc.StatusCode.UNAVAILABLE
        server.call(cap(1 << 30))
        (series,) = history(client, [trial.id], ["loss"]).series
        assert list(series.steps) == list(range(1, 43))
        client.channel.close()
    finally:
        server.stop()


def test_a_retry_racing_a_report_stored_the_direct_way_is_a_retry(tmp_path):
    async def scenario():
        storage = open_storage(str(tmp_path / "race.db"))
        await storage.open()
        try:
            trial = await storage.create_trial(Trial(name="race"), None, lambda study: None)
            storage.reports.journal.close()
            # Room for two records: the third report goes the direct way, and
            # storing the first two on its way empties the journal.
            storage.reports.journal = Journal(str(tmp_path / "small-journal"), capacity=200)

            assert await storage.report_metrics(loss_report(trial.id, 1)) is True
            assert await storage.report_metrics(loss_report(trial.id, 2)) is True
            results = await asyncio.gather(storage.report_metrics(loss_report(trial.id, 10)),
                                           storage.report_metrics(loss_report(trial.id, 10)))
            assert sorted(results) == [False, True]
            summaries = await storage.metric_summaries([trial.id], "training")
            assert [(s.name, s.summary.count) for s in summaries] == [("loss", 3)]
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_a_large_write_right_behind_journaled_reports_finds_them_stored(tmp_path):
    async def scenario():
        storage = open_storage(str(tmp_path / "order.db"))
        await storage.open()
        try:
            trial = await storage.create_trial(Trial(name="order"), None, lambda study: None)
            assert await storage.report_metrics(loss_report(trial.id, 5)) is True
            assert storage.reports.unstored == 1
            # Six reports: more than one turn's small writes take, so the batch
            # goes to the writer thread, behind the store of the journaled one.
            clash = m.ReportDraft(trial.id, 0, "training", 5, 0, {"loss": 50.0})
            batch = m.IngestBatch(reports=[clash, *(loss_report(trial.id, step) for step in range(6, 11))],
                                  report_index=list(range(6)))
            outcome = await storage.ingest_metrics(batch)
            assert outcome.added == 5 and [(index, type(err).__name__) for _, index, err in outcome.errors] == [
                (0, "MetricConflict")]
            summaries = await storage.metric_summaries([trial.id], "training")
            assert [(s.name, s.summary.count, s.summary.vmin) for s in summaries] == [("loss", 6, 5.0)]
            assert storage.reports.unstored == 0
        finally:
            await storage.close()

    asyncio.run(scenario())
