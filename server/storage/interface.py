"""The storage interface every backend implements: one abstract class per
aggregate, and Storage, which is all of them.

Methods that change data take domain functions and run them inside the
backend's write transaction, so the checks they make (legal transition, etag,
study capacity) and the write they allow are atomic.

Conventions every method keeps:
- Errors are domain errors (server/domain/errors.py): NotFound for an
  unknown id or name it is given, RequestIdReused for a request key used for
  another request; other refusals are named on the method.
- Listings are keyset pages: `after` is the key of the last row already
  returned (None for the first page) and rows come in key order. Listings a
  caller orders take a listing.Page (order, size, after) and return Paged;
  the others take `after` and a limit (-1: every row) and return a list.
- Results are domain objects or the records below, never rows.

Every implementation passes tests/storage/test_conformance.py.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from ..domain import metrics as m
from ..domain.checkpoints import Checkpoint
from ..domain.idempotency import RequestKey
from ..domain.listing import Page, StudyFilter, TrialFilter, WorkerFilter
from ..domain.models import Study, Trial, TrialEvent, Worker
from ..domain.profiler import Chunk, ChunkSummary, Labels, SummaryTable
from ..domain.tokens import Token
from ..domain.trial_lifecycle import Change

T = TypeVar("T")
Now = int
StudyCheck = Callable[[Study], None]
TrialChange = Callable[[Trial, Now], Change]
# Given the study (locked), its unfinished trials and how many new trials
# there is room for, the hyperparameters of at most that many new trials;
# fewer means the search space is exhausted. Runs inside the write.
SuggestionPlan = Callable[[Study, list[Trial], int], list[dict]]


@dataclass
class HistoryRead:
    """Trials of a study changed after an (update_time, id) key, at most
    limit of them in that order, read inside a suggesting write (the study
    locked) and handed to learn before the plan runs."""

    after: tuple[int, int] | None
    learn: Callable[[list[Trial]], None]
    limit: int = 1000


class Suggested(NamedTuple):
    """What SuggestTrials hands out: the caller's unfinished trials, then the
    new ones, and the study as the write left it."""

    trials: list[Trial]
    study: Study


@dataclass
class IngestItem:
    """One validated profiler batch, ready to store."""

    sequence: int
    labels: Labels
    summary: ChunkSummary
    data: bytes


@dataclass
class IngestResult:
    # Highest sequence number of the stream now stored (or rejected for good).
    acknowledged_sequence: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    stored_samples: int = 0
    duplicates: int = 0

    def to_record(self) -> str:
        return json.dumps([self.acknowledged_sequence, self.rejected, self.stored_samples, self.duplicates])

    @classmethod
    def from_record(cls, record: str) -> IngestResult:
        ack, rejected, stored, duplicates = json.loads(record)
        return cls(ack, [tuple(r) for r in rejected], stored, duplicates)


@dataclass(slots=True)
class MetricSeriesSummary:
    """One metric series of a trial (or of a Katib trial name) and its summary."""

    series_id: int
    trial_id: int
    group: str
    name: str
    summary: m.SeriesSummary


@dataclass(slots=True)
class DebugEvent:
    id: int
    kind: str
    metric: str
    variant: str
    iteration: int
    time: int
    payload: dict


@dataclass(slots=True)
class LogLine:
    id: int
    time: int
    level: str
    worker: str
    stream: str
    rank: int
    message: str


@dataclass(slots=True)
class Observation:
    """A Katib observation: metric name, time, and the value as it was sent."""

    name: str
    time: int
    value: str


@dataclass
class CheckpointFilter:
    trial_id: int = 0
    study_id: int = 0
    states: list[str] = field(default_factory=list)
    min_steps: int | None = None
    max_steps: int | None = None
    created_after: int | None = None
    created_before: int | None = None


class Paged(NamedTuple, Generic[T]):
    """A page of a listing a caller orders, and the key of its last row to
    continue after; after is None on the last page."""

    items: list[T]
    after: tuple | None


@dataclass
class SeriesInfo:
    series_id: int
    labels: Labels
    sample_count: int
    chunk_count: int
    first_ts: int | None
    last_ts: int | None
    first_batch: int | None
    last_batch: int | None


class StudyStore(abc.ABC):
    """Studies."""

    @abc.abstractmethod
    async def create_study(self, study: Study, key: RequestKey | None = None) -> Study:
        """Inserts a study; a request seen before returns the study it created
        (RequestIdReused for the same id with another request)."""

    @abc.abstractmethod
    async def get_study(self, study_id: int) -> Study: ...

    @abc.abstractmethod
    async def get_study_by_name(self, name: str) -> Study: ...

    @abc.abstractmethod
    async def list_studies(self, flt: StudyFilter, page: Page) -> Paged[Study]: ...

    @abc.abstractmethod
    async def update_study(self, study_id: int, apply: Callable[[Study], Study]) -> Study: ...

    @abc.abstractmethod
    async def delete_study(self, study_id: int, check: StudyCheck) -> Study: ...

    @abc.abstractmethod
    async def suggest_trials(self, study_id: int, client_id: str, count: int, plan: SuggestionPlan,
                             start: TrialChange | None = None, history: HistoryRead | None = None) -> Suggested:
        """With the study locked: the client's unfinished trials (at most
        count), then new QUEUED trials from plan for the rest, as far as
        parallel_trials and max_trials leave room; the study counts them in
        suggestion_count and completes when plan found the space exhausted.
        start: a change made to each new trial before it is stored, its
        events appended. history: what changed in the study, read first.
        NotFound for an unknown study."""

    @abc.abstractmethod
    async def metrics_overdue(self, now: int, limit: int = 500) -> list[tuple[int, float]]:
        """(trial id, the study's metrics_timeout_seconds) of RUNNING trials
        of studies with a metrics timeout that stored no metric point since
        now minus that timeout (counted from the trial's start when it has
        none)."""

    @abc.abstractmethod
    async def search_history(self, study_id: int, after: tuple[int, int] | None, limit: int = 1000) -> list[Trial]:
        """The study's trials ordered by (update_time, id), after that key:
        what changed since a search last looked."""


class TrialStore(abc.ABC):
    """Trials and their event history; the watchdog's queries."""

    @abc.abstractmethod
    async def create_trial(self, trial: Trial, key: RequestKey | None, admit: Callable[[Study | None], None]) -> Trial:
        """Inserts a trial after admit(study) accepted it, in one transaction;
        a request seen before returns the trial it created."""

    @abc.abstractmethod
    async def get_trial(self, trial_id: int) -> Trial: ...

    @abc.abstractmethod
    async def list_trials(self, flt: TrialFilter, page: Page) -> Paged[Trial]:
        """Trials with their metric summaries and best checkpoint; page.order.field
        may name a metric aggregate (listing.metric_order)."""

    @abc.abstractmethod
    async def change_trial(self, trial_id: int, change: TrialChange, key: RequestKey | None = None) -> Trial:
        """Applies change(trial, now) and appends its events. A request seen
        before returns the trial as it is now without applying anything."""

    @abc.abstractmethod
    async def complete_trial(self, trial_id: int, report: m.ReportDraft | None, change: TrialChange,
                             key: RequestKey | None = None) -> Trial:
        """In one transaction: stores report as ingest_metrics would (a
        report at step 0 is put at the trial's steps_completed), raising its
        refusal (NotFound, TrialFinished, StaleTrialRun, MetricConflict), then
        applies change(trial, now) to the trial it left and appends its
        events. A request seen before returns the trial as it is now."""

    @abc.abstractmethod
    async def delete_trial(self, trial_id: int, check: Callable[[Trial], None]) -> Trial: ...

    @abc.abstractmethod
    async def list_trial_events(
        self, trial_id: int, after_sequence: int, limit: int, descending: bool = False, before_sequence: int = 0
    ) -> list[TrialEvent]: ...

    @abc.abstractmethod
    async def trials_due(self, now: int, limit: int = 500) -> list[int]:
        """Ids of trials whose stop or runtime deadline is at or before now."""

    @abc.abstractmethod
    async def silent_trials(self, heard_after: int, limit: int = 500) -> list[int]:
        """Ids of active trials whose current run has workers, none of which
        sent a heartbeat after heard_after."""


class WorkerStore(abc.ABC):
    """The workers of a trial's runs."""

    @abc.abstractmethod
    async def register_worker(self, worker: Worker, key: RequestKey | None, admit: Callable[[Trial], None]) -> Worker:
        """Inserts a worker after admit(trial); a request seen before returns
        the worker it registered."""

    @abc.abstractmethod
    async def get_worker(self, worker_id: int) -> Worker: ...

    @abc.abstractmethod
    async def list_workers(self, flt: WorkerFilter, page: Page) -> Paged[Worker]: ...

    @abc.abstractmethod
    async def run_workers(self, trial_id: int, trial_run_id: int) -> list[Worker]:
        """Every worker registered for one run of a trial, in registration
        order, however many (NOT_FOUND for an unknown trial)."""

    @abc.abstractmethod
    async def change_worker(self, worker_id: int, apply: Callable[[Worker, Now], Worker]) -> Worker: ...

    @abc.abstractmethod
    async def delete_worker(self, worker_id: int) -> Worker: ...


class ProfilerStore(abc.ABC):
    """Profiler series, their chunks and the position of each ingest stream."""

    @abc.abstractmethod
    async def ingest_profiler(self, stream_id: str, items: list[IngestItem], key: RequestKey | None = None) -> IngestResult:
        """Stores batches atomically. With a stream_id, a sequence at or below
        the stream's position is a duplicate when that sequence was stored and
        rejected otherwise; a request seen before returns its first result."""

    @abc.abstractmethod
    async def profiler_stream_position(self, stream_id: str) -> int: ...

    @abc.abstractmethod
    async def list_profiler_series(self, trial_id: int, after: tuple | None = None, limit: int = -1) -> list[SeriesInfo]:
        """Series ordered by (name, agent_id, gpu_uuid, metric_type), after
        that key, at most limit (-1: all); NotFound for an unknown trial."""

    @abc.abstractmethod
    async def find_profiler_series(self, labels: Labels) -> SeriesInfo: ...

    @abc.abstractmethod
    async def profiler_summaries(
        self, series_id: int, start_ts: int, end_ts: int, start_batch: int, end_batch: int, after: tuple | None = None
    ) -> SummaryTable:
        """Summaries of the chunks overlapping the ranges, ordered by (first_ts, chunk id)."""

    @abc.abstractmethod
    async def profiler_chunks(self, chunk_ids: list[int]) -> dict[int, Chunk]: ...

    @abc.abstractmethod
    async def profiler_chunks_after(
        self, series_id: int, after_chunk_id: int, after_ts: int, limit: int
    ) -> list[tuple[int, Chunk]]: ...

    @abc.abstractmethod
    async def delete_expired_profiler(self, now: int, default_days: int, limit: int) -> int:
        """Deletes up to limit profiler chunks older than their trial's retention; returns how many."""


class MetricStore(abc.ABC):
    """Metric reports and points, debug events and task logs."""

    @abc.abstractmethod
    async def ingest_metrics(self, batch: m.IngestBatch, key: RequestKey | None = None) -> m.IngestOutcome:
        """Stores reports, points, debug events and logs in one transaction;
        items that cannot be stored are listed in the outcome's errors. A
        request seen before stores nothing and returns its first outcome."""

    @abc.abstractmethod
    async def report_metric_columns(self, batch: m.ColumnBatch, key: RequestKey | None = None) -> m.ColumnOutcome:
        """Stores the rows of a columnar batch in one transaction, each as the
        report it stands for: a row at a step its group has (stored or earlier
        in the batch) is a retry with the same values and rejected with
        others; the other rows are stored. Raises NotFound, TrialFinished or
        StaleTrialRun for the whole batch. A request seen before stores
        nothing and returns its first outcome."""

    async def report_metrics(self, report: m.ReportDraft) -> bool:
        """Stores one report; True when stored now, False for a retry of a
        stored one. Raises NotFound, TrialFinished, StaleTrialRun,
        MetricConflict or RequestIdReused when it is refused. A backend may
        acknowledge this faster than a batch."""
        outcome = await self.ingest_metrics(m.IngestBatch(reports=[report], report_index=[0]))
        if outcome.errors:
            raise outcome.errors[0][2]
        return outcome.report_created[0]

    @abc.abstractmethod
    async def metric_summaries(self, trial_ids: list[int], group: str = "", names: list[str] | None = None,
                               after: tuple | None = None, limit: int = -1) -> list[MetricSeriesSummary]:
        """Summaries ordered by (trial_id, group, name), after that key, at
        most limit (-1: all); NotFound for an unknown trial."""

    @abc.abstractmethod
    async def metric_series_id(self, trial_id: int, group: str, name: str) -> int | None: ...

    @abc.abstractmethod
    async def metric_points(
        self, series_id: int, start_step: int, end_step: int, include_archived: bool, after: tuple | None, limit: int
    ) -> m.PointColumns:
        """Points ordered by (step, trial_run_id), after the (step, run) cursor, at most limit."""

    @abc.abstractmethod
    async def metric_buckets(
        self, series_id: int, start_step: int, end_step: int, n: int, by_time: bool, include_archived: bool
    ) -> list[m.Block]: ...

    @abc.abstractmethod
    async def debug_events(self, trial_id: int, kinds: list[str], metric: str, after_id: int, limit: int
                           ) -> list[DebugEvent]:
        """Events after after_id in id order; NotFound for an unknown trial."""

    @abc.abstractmethod
    async def list_logs(self, trial_id: int, from_tail: bool, levels: list[str], worker: str, after_id: int | None,
                        limit: int) -> list[LogLine]:
        """Lines after the after_id cursor in id order (from_tail: before it,
        newest first); NotFound for an unknown trial."""

    @abc.abstractmethod
    async def delete_expired_logs(self, now: int, default_days: int, limit: int) -> int:
        """Deletes up to limit task log lines older than their trial's retention; returns how many."""


class ObservationStore(abc.ABC):
    """Katib observation logs, keyed by trial name."""

    @abc.abstractmethod
    async def report_observations(self, trial_name: str, observations: list[tuple[str, int, float | None, str]]) -> None:
        """(metric name, time, numeric value or None, value as sent)."""

    @abc.abstractmethod
    async def get_observations(self, trial_name: str, metric_name: str, start: int | None, end: int | None
                               ) -> list[Observation]:
        """Ordered by time; an empty metric_name: every metric."""

    @abc.abstractmethod
    async def delete_observations(self, trial_name: str) -> int:
        """Removes the trial name's observations and its early-stop mark;
        returns how many metric series went."""

    @abc.abstractmethod
    async def mark_early_stopped(self, trial_name: str, time: int) -> int | None:
        """Records that Katib stopped this trial early (a repeat keeps the
        first record); returns the id of the trialplane trial of that name
        (the newest, as observations link to it), or None."""

    @abc.abstractmethod
    async def early_stopped(self, trial_names: list[str]) -> set[str]:
        """Which of these trial names carry an early-stop mark."""


class CheckpointStore(abc.ABC):
    """Checkpoints and their retention."""

    @abc.abstractmethod
    async def report_checkpoint(self, report: Checkpoint) -> Checkpoint: ...

    @abc.abstractmethod
    async def get_checkpoint(self, uuid: str) -> Checkpoint: ...

    @abc.abstractmethod
    async def list_checkpoints(self, flt: CheckpointFilter, page: Page) -> Paged[Checkpoint]:
        """page.order.field: create_time, steps_completed or "metric:<name>"
        of the validation metrics (checkpoints without it are left out)."""

    @abc.abstractmethod
    async def update_checkpoint_metadata(self, uuid: str, metadata: dict) -> Checkpoint: ...

    @abc.abstractmethod
    async def delete_checkpoints(self, uuids: list[str], confirm: bool) -> list[Checkpoint]: ...

    @abc.abstractmethod
    async def apply_checkpoint_retention(self, study_id: int, keep_best: int, keep_latest: int, dry_run: bool
                                         ) -> list[Checkpoint]: ...


class TokenStore(abc.ABC):
    """Bearer tokens, kept by the hash of their secret."""

    @abc.abstractmethod
    async def create_token(self, token: Token, only_if_none: bool = False) -> Token | None:
        """Stores a new token (its secret_hash set); with only_if_none, only
        when there is no token at all yet (else None), decided in the same
        transaction so that replicas starting together make one."""

    @abc.abstractmethod
    async def any_token(self) -> bool: ...

    @abc.abstractmethod
    async def token_by_hash(self, secret_hash: bytes) -> Token | None: ...

    @abc.abstractmethod
    async def get_token(self, token_id: int) -> Token: ...

    @abc.abstractmethod
    async def list_tokens(self, page: Page, include_inactive: bool, include_trial_run: bool, now: int) -> Paged[Token]:
        """Newest first."""

    @abc.abstractmethod
    async def revoke_token(self, token_id: int, now: int) -> tuple[Token, list[int]]:
        """Sets revoke_time once (a repeat returns the token as it is), and on
        the trial-run tokens made with it; returns the token and the ids of
        those revoked with it now."""


class ChangeRelay(abc.ABC):
    """Tells other server processes on the same database what changed, and
    this one what they changed: small (topic, key) pairs such as ("trials",
    12), never data. A lost announcement costs a follower a poll interval,
    never an item: followers read by their own cursors."""

    @abc.abstractmethod
    def announce(self, topic: str, key: int | None) -> None:
        """Queues an announcement; never blocks (announcements are batched)."""

    @abc.abstractmethod
    async def run(self, deliver: Callable[[str, int | None], None]) -> None:
        """Calls deliver(topic, key) for what other processes announce, until cancelled."""


class JobLease(abc.ABC):
    """The right to run one background job, held by one server process at a
    time; another takes it over once its holder is gone."""

    @abc.abstractmethod
    async def held(self) -> bool:
        """Whether this process holds the lease now (taking it if it is free)."""

    @abc.abstractmethod
    async def release(self) -> None: ...


class Storage(StudyStore, TrialStore, WorkerStore, ProfilerStore, MetricStore, ObservationStore, CheckpointStore,
              TokenStore):
    """Everything a server stores, opened once at start-up and closed at shutdown."""

    def change_relay(self) -> ChangeRelay | None:
        """How this backend announces changes across server processes; None
        when it cannot (followers then poll)."""
        return None

    def job_lease(self, job: str) -> JobLease | None:
        """The lease one job's runs take across server processes on this
        database; None: every process runs it."""
        return None

    async def drop_expired_partitions(self, now: int, default_days: int) -> dict[str, int]:
        """Drops the time partitions of profiler chunks and log lines whose
        every row is past its trial's retention, before the sweep DELETEs
        the rest; returns the rows each dropped partition held, by name.
        Backends without partitions drop nothing."""
        return {}

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
