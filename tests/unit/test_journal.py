"""The SDK's metric journal (clients/sdk/journal.py) on its own: records
read back bit for bit, a reopened journal resends only what was not
acknowledged, a torn tail is cut, a full journal drops its oldest records
and counts them, and the ring stays small while the sender keeps up."""

import struct
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trialplane.client.sdk import delivery
from trialplane.client.sdk.journal import (
    HEADER_SIZE,
    MIN_CAPACITY,
    POINTS,
    RECORD_SIZE,
    Journal,
    JournalBusy,
    JournalError,
    find_journals,
    journal_name,
    names_blob,
    parse_records,
    run_journals,
    server_directory,
    split_blob,
)
from trialplane.v1 import checkpoint_pb2
from trialplane.v1 import checkpoint_service_pb2 as cs

BLOB = names_blob("training", ["loss", "acc"])
RECORD_BYTES = RECORD_SIZE + 16 + 24  # two values and a 17-byte blob, aligned


def open_journal(path, capacity=1 << 20, **options):
    return Journal.open(path, trial_id=7, trial_run_id=2, address="127.0.0.1:50051", capacity=capacity, **options)


def append(journal, steps):
    for step in steps:
        journal.append_points(step, 1_000_000 + step, BLOB, (step * 0.5, -float(step)))


def send_all(journal, max_records=10**9):
    """What the sender does: take what is there and acknowledge it. Returns the steps sent."""
    sent = []
    while True:
        got = journal.read(1 << 20)
        if got is None:
            return sent
        begin, buffer = got
        records, end = parse_records(buffer, begin, max_records - len(sent))
        first = journal.taken(end)
        records = [r for r in records if r.offset >= first]
        journal.acknowledge(end, len(records), sum(r.count for r in records))
        sent.extend(r.step for r in records)
        if len(sent) >= max_records:
            return sent


def steps_of(journal):
    return [r.step for r in journal.records()]


def test_records_read_back_bit_for_bit(tmp_path):
    journal = open_journal(tmp_path / "j.journal")
    values = (float("nan"), float("inf"), -0.0, 5e-324, 1e300)
    blob = names_blob("validation", ["a", "b", "損失", "n" * 256, "e"])
    journal.append_points(3, 123, blob, values)
    (record,) = journal.records()
    assert (record.kind, record.step, record.time_us, record.count) == (POINTS, 3, 123, 5)
    assert record.values == struct.pack("<5d", *values)
    assert split_blob(record.blob) == ("validation", ["a", "b", "損失", "n" * 256, "e"])
    assert journal.pending_points == 5
    journal.close()


def test_reopening_resends_only_what_was_not_acknowledged(tmp_path):
    path = tmp_path / "j.journal"
    journal = open_journal(path)
    append(journal, range(100))
    assert send_all(journal, max_records=40) == list(range(40))
    append(journal, range(100, 120))
    journal.release()  # as a killed process leaves it

    again = open_journal(path)
    assert again.recovery.records == 80 and again.recovery.cut_at is None
    assert again.pending_points == 160
    assert steps_of(again) == list(range(40, 120))
    append(again, [120])
    assert send_all(again) == list(range(40, 121))
    assert again.close() is True  # everything settled: the file goes
    assert not path.exists()


def test_a_torn_last_record_is_cut_and_the_rest_kept(tmp_path):
    path = tmp_path / "j.journal"
    journal = open_journal(path)
    append(journal, range(10))
    last = list(journal.records())[-1]
    journal.release()
    with open(path, "r+b") as f:  # a kill in the middle of copying the last record
        f.seek(HEADER_SIZE + last.offset + RECORD_SIZE + 3)
        f.write(b"\xff\xff")

    again = open_journal(path)
    assert again.recovery.cut_at == last.offset
    assert steps_of(again) == list(range(9))
    append(again, [100])  # overwrites the torn record
    again.release()
    assert steps_of(open_journal(path)) == [*range(9), 100]


def test_a_journal_cut_short_keeps_its_whole_records(tmp_path):
    path = tmp_path / "j.journal"
    journal = open_journal(path)
    append(journal, range(10))
    end = journal.tail
    journal.release()
    with open(path, "r+b") as f:
        f.truncate(HEADER_SIZE + end - 5)
    again = open_journal(path)
    assert steps_of(again) == list(range(9))
    append(again, [9])
    assert send_all(again) == list(range(10))


def test_a_full_journal_drops_its_oldest_records_and_counts_them(tmp_path):
    path = tmp_path / "j.journal"
    journal = open_journal(path, capacity=MIN_CAPACITY)
    total = 5 * MIN_CAPACITY // RECORD_BYTES
    append(journal, range(total))
    kept = steps_of(journal)
    assert kept == list(range(total - len(kept), total))  # the newest, in order
    assert len(kept) * RECORD_BYTES > MIN_CAPACITY * 0.9
    assert journal.dropped_points == 2 * (total - len(kept)) == 2 * journal.dropped_records
    assert journal.pending_points == 2 * len(kept)
    assert journal.physical_size() == MIN_CAPACITY
    journal.release()
    again = open_journal(path)
    assert steps_of(again) == kept and again.dropped_points == 2 * (total - len(kept))


def test_records_the_sender_holds_are_not_counted_as_dropped(tmp_path):
    journal = open_journal(tmp_path / "j.journal", capacity=MIN_CAPACITY)
    append(journal, range(100))
    begin, buffer = journal.read(1 << 20)
    records, end = parse_records(buffer, begin, 10**9)
    journal.taken(end)  # in flight while the server is down
    append(journal, range(100, 3000))
    dropped_before_ack = journal.dropped_records
    journal.acknowledge(end, len(records), 200)
    assert dropped_before_ack == 3000 - 100 - len(steps_of(journal))
    assert journal.pending_points == 2 * len(steps_of(journal))


def test_the_ring_stays_small_while_the_sender_keeps_up(tmp_path):
    soft = 64 << 10
    journal = open_journal(tmp_path / "j.journal", capacity=16 << 20, soft_size=soft)
    for start in range(0, 40_000, 100):
        append(journal, range(start, start + 100))
        assert send_all(journal) == list(range(start, start + 100))
    assert journal.tail > 40 * soft  # went round many times
    assert journal.physical_size() <= 2 * soft
    assert journal.dropped_points == 0


def test_an_outage_right_after_the_ring_went_round_loses_nothing_below_the_cap(tmp_path):
    """The writer goes back to the start of the ring while a few records are
    still unacknowledged at its end; when the server then stays away, it
    must skip over them rather than drop them."""
    soft = 64 << 10
    capacity = 1 << 20
    path = tmp_path / "j.journal"
    journal = open_journal(path, capacity=capacity, soft_size=soft)
    step = 0
    while journal.tail < soft - 4 * RECORD_BYTES:
        append(journal, [step])
        step += 1
    send_all(journal)
    unsent_from = step
    append(journal, range(step, step + 20))  # not acknowledged: the server is gone now
    step += 20
    while (step - unsent_from) * RECORD_BYTES < capacity * 0.95:
        append(journal, [step])
        step += 1
    assert journal.dropped_points == 0
    assert steps_of(journal) == list(range(unsent_from, step))
    journal.release()
    again = open_journal(path)
    assert steps_of(again) == list(range(unsent_from, step))
    assert send_all(again) == list(range(unsent_from, step))


def test_a_checkpoint_goes_alone_after_the_points_before_it(tmp_path):
    journal = open_journal(tmp_path / "j.journal")
    append(journal, range(3))
    report = cs.ReportCheckpointRequest(checkpoint=checkpoint_pb2.Checkpoint(uuid="c1", trial_id=7, steps_completed=3))
    journal.append_checkpoint(3, report.SerializeToString())
    append(journal, range(3, 5))
    batches = []
    while (batch := delivery.next_batch(journal)) is not None:
        batches.append(batch)
        journal.acknowledge(batch.end, batch.records, batch.points)
    assert [(b.is_checkpoint, b.points) for b in batches] == [(False, 6), (True, 0), (False, 4)]
    assert batches[1].request == report
    assert [list(b.steps) for b in batches[2].request.blocks] == [[3, 4]]


def test_a_second_process_cannot_open_the_same_journal(tmp_path):
    path = tmp_path / "j.journal"
    journal = open_journal(path)
    with pytest.raises(JournalBusy):
        open_journal(path)
    journal.close(delete_if_settled=False)
    with pytest.raises(JournalError, match="holds trial 7 run 2"):
        Journal.open(path, trial_id=8, trial_run_id=2)
    (tmp_path / "other.journal").write_bytes(b"x" * 5000)
    with pytest.raises(JournalError, match="not a trialplane journal"):
        Journal.open(tmp_path / "other.journal", create=False)


def test_journal_files_are_found_by_trial_run_and_server(tmp_path):
    directory = server_directory(tmp_path, "127.0.0.1:50051")
    assert directory == tmp_path / "127.0.0.1_50051"
    for index in (2, 1, 10):
        open_journal(directory / journal_name(7, 2, index)).close(delete_if_settled=False)
    open_journal(directory / "unrelated.txt").close(delete_if_settled=False)
    assert [p.name for p in run_journals(directory, 7, 2)] == [
        "trial-7.run-2.journal", "trial-7.run-2.2.journal", "trial-7.run-2.10.journal"]
    assert run_journals(directory, 7, 1) == []
    assert len(find_journals(tmp_path)) == 3
    assert find_journals(directory / journal_name(7, 2)) == [directory / journal_name(7, 2)]


def test_the_same_range_always_makes_the_same_request(tmp_path):
    path = tmp_path / "j.journal"
    journal = open_journal(path)
    for step in range(50):
        journal.append_points(step, 5, names_blob("training" if step % 3 else "validation", ["x"]), (step,))
    first = delivery.next_batch(journal)
    journal.release()
    again = delivery.next_batch(open_journal(path))
    assert first.request.SerializeToString(deterministic=True) == again.request.SerializeToString(deterministic=True)
    assert first.request.request_id == f"tp-2-{journal.journal_id:x}-0-0-{first.end}"
    assert [b.group for b in first.request.blocks] == ["validation", "training"]


def test_the_batch_in_flight_at_a_crash_is_sent_again_as_it_was(tmp_path):
    path = tmp_path / "j.journal"
    journal = open_journal(path)
    append(journal, range(100))
    in_flight = delivery.next_batch(journal)
    journal.set_in_flight(in_flight.begin, in_flight.end)  # what the sender does before its first try
    append(journal, range(100, 300))  # more arrives while the answer is awaited; then the process dies
    journal.release()

    again = open_journal(path)
    resent = delivery.next_batch(again)
    assert resent.request.request_id == in_flight.request.request_id
    assert resent.request.SerializeToString(deterministic=True) == in_flight.request.SerializeToString(deterministic=True)
    again.acknowledge(resent.end, resent.records, resent.points)
    rest = delivery.next_batch(again)
    assert (rest.begin, rest.records) == (resent.end, 200)


sizes = st.integers(min_value=0, max_value=60)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(1, 80), sizes),
        st.tuples(st.just("send"), st.integers(0, 200)),
        st.tuples(st.just("reopen")),
    ),
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations)
def test_a_journal_behaves_as_a_queue_that_drops_its_oldest(tmp_path_factory, ops):
    """Against a model: what the journal keeps is always a suffix of what
    was appended and not sent; it drops only when what it holds comes near
    its capacity, and it counts what it dropped."""
    path = tmp_path_factory.mktemp("model") / "j.journal"
    capacity = MIN_CAPACITY
    journal = open_journal(path, capacity=capacity, soft_size=8 << 10)
    model: deque[tuple[int, int, int]] = deque()  # (step, bytes, points)
    step = dropped = 0
    for op in ops:
        if op[0] == "append":
            _, count, extra_names = op
            blob = names_blob("g", [f"m{i}" for i in range(extra_names + 1)])
            length = RECORD_SIZE + 8 * (extra_names + 1) + len(blob)
            length += -length % 8
            for _ in range(count):
                held = sum(n for _, n, _ in model)
                journal.append_points(step, 0, blob, tuple(float(i) for i in range(extra_names + 1)))
                model.append((step, length, extra_names + 1))
                step += 1
                kept = steps_of(journal)
                lost = len(model) - len(kept)
                if lost:
                    assert held + length > capacity // 2, "dropped while far from full"
                for _ in range(lost):
                    dropped += model.popleft()[2]
        elif op[0] == "send":
            sent = send_all(journal, max_records=op[1]) if op[1] else []
            assert sent == [s for s, _, _ in list(model)[: len(sent)]]
            for _ in sent:
                model.popleft()
        else:
            journal.release()
            journal = open_journal(path, capacity=capacity, soft_size=8 << 10)
        assert steps_of(journal) == [s for s, _, _ in model]
        assert journal.dropped_points == dropped
        assert journal.pending_records == len(model)
        assert journal.pending_points == sum(p for _, _, p in model)
    journal.close()
