"""The Client's helpers, one class per resource.

Every helper returns the API's own protobuf messages (trialplane.v1), as the
server sent them; a listing is an iterator that fetches the next page when
the one before is used up, so page tokens never show. The one exception is
MetricsApi.history_arrays, which returns numpy columns (SeriesArrays).
ProfilerApi is not an attribute of the Client; make one of its stubs:
ProfilerApi(client.stubs).
Arguments take Python values: enum values by name ("running" or
"TRIAL_STATE_RUNNING") or number, datetimes, seconds or timedeltas, dicts in
the proto3 JSON shape for nested messages.
"""

from __future__ import annotations

import builtins
import datetime as dt
import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from google.protobuf import field_mask_pb2
from trialplane.v1 import (
    checkpoint_pb2,
    checkpoint_service_pb2,
    log_pb2,
    log_service_pb2,
    metrics_pb2,
    metrics_service_pb2,
    profiler_pb2,
    profiler_service_pb2,
    study_pb2,
    study_service_pb2,
    token_pb2,
    token_service_pb2,
    trial_pb2,
    trial_service_pb2,
    worker_pb2,
    worker_service_pb2,
)

from .errors import ResourceExhausted
from .stubs import ResponseStream, Stubs, limit_delay

if TYPE_CHECKING:
    import numpy as np
from .values import (
    duration,
    enum_value,
    enum_values,
    load_document,
    message_from,
    parameter_value,
    parse_dict,
    timestamp,
)

StudySource: TypeAlias = "study_pb2.Study | Mapping[str, Any] | str | Path"
Time: TypeAlias = "dt.datetime | None"


def _pages(call: Callable, request, items: str) -> Iterator:
    """Every item of every page of a List call, fetched page by page."""
    while True:
        response = call(request)
        yield from getattr(response, items)
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


def _streamed(stream: ResponseStream, pick: Callable[[Any], Iterable]) -> Iterator:
    """The items of a server stream; leaving the loop early cancels the call."""
    with stream:
        for response in stream:
            yield from pick(response)


# The limit a server names when it ends a follow for being open too long.
FOLLOW_LIFETIME = "max_stream_seconds"


def _resumed(open_stream: Callable[[], ResponseStream], pick: Callable[[Any], Iterable],
             sleep: Callable[[float], None] = time.sleep) -> Iterator:
    """The items of a follow that outlives the server's stream lifetime: when
    the server ends the stream for that (RESOURCE_EXHAUSTED, limit
    max_stream_seconds, with a RetryInfo), it is opened again after the
    delay; open_stream starts from the cursor of the last item picked."""
    while True:
        try:
            yield from _streamed(open_stream(), pick)
            return
        except ResourceExhausted as err:
            delay = limit_delay(err)
            if delay is None or err.metadata.get("limit_name") != FOLLOW_LIFETIME:
                raise
            sleep(delay)


def _ids(trial_ids: int | Iterable[int]) -> list[int]:
    return [trial_ids] if isinstance(trial_ids, int) else list(trial_ids)


def _set_time(field, value: Time) -> None:
    if value is not None:
        field.CopyFrom(timestamp(value))


def _mask(fields: Iterable[str] | None) -> field_mask_pb2.FieldMask | None:
    return field_mask_pb2.FieldMask(paths=list(fields)) if fields else None


def study_from(source: StudySource) -> tuple[study_pb2.Study, str]:
    """A Study and the request_id it came with (empty when none) from a Study,
    a dict, or the path of a YAML or JSON file holding one.

    A dict or file is the study in the proto3 JSON shape, or a whole
    CreateStudyRequest ({"study": {...}, "request_id": ...}) as grpcurl -d
    takes it."""
    if isinstance(source, study_pb2.Study):
        return source, ""
    document = load_document(source) if isinstance(source, (str, Path)) else source
    if not isinstance(document, Mapping):
        raise ValueError(f"a study is a mapping of its fields, not {type(document).__name__}")
    if "study" in document and set(document) <= {"study", "request_id", "requestId"}:
        request = parse_dict(document, study_service_pb2.CreateStudyRequest)
        return request.study, request.request_id
    return parse_dict(document, study_pb2.Study), ""


def algorithm_spec(name: str, settings: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> dict:
    """An algorithm or early-stopping spec in the proto3 JSON shape, as
    StudiesApi.update takes it; settings as a mapping or as (name, value)
    pairs, kept in their order (a repeated name reaches the server, which
    names it)."""
    pairs = settings.items() if isinstance(settings, Mapping) else settings or ()
    return {"name": name, "settings": [{"name": k, "value": str(v)} for k, v in pairs]}


class StudiesApi:
    def __init__(self, stubs: Stubs):
        self._stub = stubs.studies

    def create(self, study: StudySource, *, request_id: str | None = None) -> study_pb2.Study:
        """Creates a study from a Study, a dict or a YAML/JSON file path. A
        request_id (the file's, or a fresh one) makes a retry return the same
        study."""
        message, file_request_id = study_from(study)
        request = study_service_pb2.CreateStudyRequest(study=message, request_id=request_id or file_request_id)
        return self._stub.CreateStudy(request)

    def get(self, study: int | str) -> study_pb2.Study:
        """A study by id (an int) or by name (a str)."""
        if isinstance(study, int):
            return self._stub.GetStudy(study_service_pb2.GetStudyRequest(id=study))
        return self._stub.GetStudy(study_service_pb2.GetStudyRequest(name=study))

    def list(
        self,
        *,
        name_pattern: str = "",
        states: Iterable[int | str] | None = None,
        tags: Iterable[str] = (),
        owner: str = "",
        created_after: Time = None,
        created_before: Time = None,
        order_by: str = "",
        fields: Iterable[str] | None = None,
        page_size: int = 0,
    ) -> Iterator[study_pb2.Study]:
        """Every study matching all the filters given (name_pattern is SQL ILIKE)."""
        request = study_service_pb2.ListStudiesRequest(
            name_pattern=name_pattern, states=enum_values(study_pb2.StudyState, "STUDY_STATE_", states),
            tags=list(tags), owner=owner, order_by=order_by, read_mask=_mask(fields), page_size=page_size,
        )
        _set_time(request.created_after, created_after)
        _set_time(request.created_before, created_before)
        return _pages(self._stub.ListStudies, request, "studies")

    def update(self, study_id: int, *, etag: str = "", **fields: Any) -> study_pb2.Study:
        """Replaces the fields given, by their .proto names, with values in the
        proto3 JSON shape: update(3, description="...", max_trials=20)."""
        if not fields:
            raise ValueError("update needs at least one field")
        study = parse_dict(fields, study_pb2.Study)
        study.id, study.etag = study_id, etag
        request = study_service_pb2.UpdateStudyRequest(study=study, update_mask=_mask(fields))
        return self._stub.UpdateStudy(request)

    def set_algorithm(self, study_id: int, name: str, settings: Mapping[str, Any] | None = None, *,
                      etag: str = "") -> study_pb2.Study:
        """Changes the search algorithm of a study, running or not (Katib's
        SetSuggestionParameters); the server checks it against the study's
        space first. The next SuggestTrials uses it."""
        return self.update(study_id, etag=etag, algorithm=algorithm_spec(name, settings))

    def set_early_stopping(self, study_id: int, name: str, settings: Mapping[str, Any] | None = None, *,
                           etag: str = "") -> study_pb2.Study:
        """Changes the early-stopping rule of a study, running or not
        (Katib's SetEarlyStoppingParameters); "" removes it. The next
        validation report is judged by it."""
        return self.update(study_id, etag=etag, early_stopping=algorithm_spec(name, settings))

    def validate_settings(self, study: StudySource) -> study_service_pb2.ValidateAlgorithmSettingsResponse:
        """Checks a study's space, algorithm and early-stopping rule (a Study,
        a dict or a YAML/JSON file, as create() takes) without creating it:
        InvalidArgument names each bad field. The answer lists the
        algorithms and rules the server has."""
        message, _ = study_from(study)
        return self._stub.ValidateAlgorithmSettings(study_service_pb2.ValidateAlgorithmSettingsRequest(
            algorithm=message.algorithm, parameters=message.parameters, early_stopping=message.early_stopping))

    def delete(self, study_id: int, *, force: bool = False, etag: str = "") -> study_pb2.Study:
        """Deletes a study (with its trials when force) and returns it as it was."""
        return self._stub.DeleteStudy(study_service_pb2.DeleteStudyRequest(id=study_id, force=force, etag=etag))

    def suggest(
        self, study_id: int, count: int = 1, *, client_id: str | None = None, start: bool = False,
    ) -> study_service_pb2.SuggestTrialsResponse:
        """Asks the study's search algorithm for count new trials (created
        QUEUED, or RUNNING with start for a driver that runs them itself and
        ends each with trials.complete); the answer's trials, and study_done
        once it hands out no more. A client_id names the caller: a call with
        the same one first returns that caller's unfinished trials, so a
        driver that retries after a lost answer never grows the study. Left
        out, each call gets a fresh one, which a retry of that call (gRPC's)
        reuses."""
        request = study_service_pb2.SuggestTrialsRequest(
            study_id=study_id, count=count, client_id=client_id if client_id is not None else uuid.uuid4().hex,
            start=start,
        )
        return self._stub.SuggestTrials(request)

    def stop(self, study_id: int, *, reason: str = "") -> study_pb2.Study:
        """Ends the search: the study STOPPED and each of its unfinished trials asked to stop."""
        return self._stub.StopStudy(study_service_pb2.StopStudyRequest(id=study_id, reason=reason))

    def complete(self, study_id: int, *, reason: str = "") -> study_pb2.Study:
        """Marks the search done: the study COMPLETED takes no new trials; running ones go on."""
        return self._stub.CompleteStudy(study_service_pb2.CompleteStudyRequest(id=study_id, reason=reason))

    def check_early_stopping(
        self, study_id: int, trial_ids: int | Iterable[int] = (),
    ) -> builtins.list[study_service_pb2.EarlyStoppingDecision]:
        """The early-stopping rule's verdict on the trials (every unfinished
        trial of the study when none are named), without acting on it."""
        request = study_service_pb2.CheckEarlyStoppingRequest(study_id=study_id, trial_ids=_ids(trial_ids))
        return list(self._stub.CheckEarlyStopping(request).decisions)


class TrialsApi:
    def __init__(self, stubs: Stubs):
        self._stub = stubs.trials

    def create(
        self,
        study_id: int = 0,
        name: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        request_id: str | None = None,
        **fields: Any,
    ) -> trial_pb2.Trial:
        """Creates a trial in QUEUED. hyperparameters maps names to bool, int,
        float or str values; other Trial fields go by their .proto names in the
        proto3 JSON shape (tags=[...], resources={"worker_count": 2})."""
        trial = parse_dict(fields, trial_pb2.Trial) if fields else trial_pb2.Trial()
        trial.study_id, trial.name = study_id, name
        for key, value in (hyperparameters or {}).items():
            trial.hyperparameters[key].CopyFrom(parameter_value(value))
        return self._stub.CreateTrial(trial_service_pb2.CreateTrialRequest(trial=trial, request_id=request_id or ""))

    def get(self, trial_id: int, *, fields: Iterable[str] | None = None) -> trial_pb2.Trial:
        """One trial; fields limits what comes back (a read mask)."""
        return self._stub.GetTrial(trial_service_pb2.GetTrialRequest(id=trial_id, read_mask=_mask(fields)))

    def list(
        self,
        study_id: int = 0,
        *,
        states: Iterable[int | str] | int | str | None = None,
        tags: Iterable[str] = (),
        name_pattern: str = "",
        created_after: Time = None,
        created_before: Time = None,
        order_by: str = "",
        fields: Iterable[str] | None = None,
        page_size: int = 0,
    ) -> Iterator[trial_pb2.Trial]:
        """Every trial matching all the filters given; study_id 0 is every
        study. order_by as ListTrials takes it ("searcher_metric_value",
        "metrics.validation.loss.min desc" ...)."""
        request = trial_service_pb2.ListTrialsRequest(
            study_id=study_id, states=enum_values(trial_pb2.TrialState, "TRIAL_STATE_", states), tags=list(tags),
            name_pattern=name_pattern, order_by=order_by, read_mask=_mask(fields), page_size=page_size,
        )
        _set_time(request.created_after, created_after)
        _set_time(request.created_before, created_before)
        return _pages(self._stub.ListTrials, request, "trials")

    def update(self, trial_id: int, *, etag: str = "", **fields: Any) -> trial_pb2.Trial:
        """Replaces the fields given, by their .proto names, with values in the
        proto3 JSON shape: update(7, notes="...", tags=["best"])."""
        if not fields:
            raise ValueError("update needs at least one field")
        trial = parse_dict(fields, trial_pb2.Trial)
        trial.id, trial.etag = trial_id, etag
        return self._stub.UpdateTrial(trial_service_pb2.UpdateTrialRequest(trial=trial, update_mask=_mask(fields)))

    def delete(self, trial_id: int, *, force: bool = False, etag: str = "") -> trial_pb2.Trial:
        """Deletes a terminal trial (any trial when force) and returns it as it was."""
        return self._stub.DeleteTrial(trial_service_pb2.DeleteTrialRequest(id=trial_id, force=force, etag=etag))

    def stop(
        self,
        trial_id: int,
        *,
        grace_period: float | dt.timedelta | None = None,
        message: str = "",
        etag: str = "",
        request_id: str | None = None,
    ) -> trial_pb2.Trial:
        """Asks a trial to stop; grace_period (seconds or a timedelta) is how
        long it may take before it is killed (the server's default when None)."""
        request = trial_service_pb2.StopTrialRequest(
            id=trial_id, grace_period=duration(grace_period), message=message, etag=etag, request_id=request_id or "",
        )
        return self._stub.StopTrial(request)

    def kill(self, trial_id: int, *, message: str = "", etag: str = "", request_id: str | None = None) -> trial_pb2.Trial:
        request = trial_service_pb2.KillTrialRequest(id=trial_id, message=message, etag=etag, request_id=request_id or "")
        return self._stub.KillTrial(request)

    def pause(self, trial_id: int, *, message: str = "", etag: str = "", request_id: str | None = None) -> trial_pb2.Trial:
        request = trial_service_pb2.PauseTrialRequest(id=trial_id, message=message, etag=etag, request_id=request_id or "")
        return self._stub.PauseTrial(request)

    def activate(self, trial_id: int, *, message: str = "", etag: str = "", request_id: str | None = None) -> trial_pb2.Trial:
        request = trial_service_pb2.ActivateTrialRequest(
            id=trial_id, message=message, etag=etag, request_id=request_id or "",
        )
        return self._stub.ActivateTrial(request)

    def restart(
        self,
        trial_id: int,
        *,
        resources: trial_pb2.Resources | Mapping[str, Any] | None = None,
        message: str = "",
        etag: str = "",
        request_id: str | None = None,
    ) -> trial_pb2.Trial:
        """Starts a new run of the trial, with new resources when given."""
        request = trial_service_pb2.RestartTrialRequest(
            id=trial_id, message=message, etag=etag, request_id=request_id or "",
            resources=message_from(resources, trial_pb2.Resources) if resources is not None else None,
        )
        return self._stub.RestartTrial(request)

    def complete(
        self,
        trial_id: int,
        final_metrics: Mapping[str, float] | None = None,
        *,
        steps_completed: int = 0,
        trial_run_id: int = 0,
        message: str = "",
        etag: str = "",
        request_id: str | None = None,
    ) -> trial_pb2.Trial:
        """Ends a trial with its result: final_metrics ({"val_loss": 0.21})
        stored as its validation at steps_completed (0: the trial's own) and
        the trial COMPLETED, in one call (Optuna's tell). Left out, request_id
        is a fresh one, so a retry of this call stores nothing twice."""
        request = trial_service_pb2.CompleteTrialRequest(
            id=trial_id, final_metrics=dict(final_metrics or {}), steps_completed=steps_completed,
            trial_run_id=trial_run_id, message=message, etag=etag, request_id=request_id or uuid.uuid4().hex,
        )
        return self._stub.CompleteTrial(request)

    def events(
        self, trial_id: int, *, after_sequence: int = 0, descending: bool = False, page_size: int = 0,
    ) -> Iterator[trial_pb2.TrialEvent]:
        """The trial's recorded state changes, oldest first unless descending."""
        request = trial_service_pb2.ListTrialEventsRequest(
            trial_id=trial_id, after_sequence=after_sequence, descending=descending, page_size=page_size,
        )
        return _pages(self._stub.ListTrialEvents, request, "events")

    def watch(self, trial_id: int, *, after_sequence: int = 0) -> Iterator[trial_pb2.TrialEvent]:
        """The trial's events after after_sequence, then new ones as they
        happen, until the trial is terminal."""
        cursor = after_sequence

        def open_stream() -> ResponseStream:
            return self._stub.WatchTrialEvents(
                trial_service_pb2.WatchTrialEventsRequest(trial_id=trial_id, after_sequence=cursor))

        def pick(response) -> list:
            nonlocal cursor
            cursor = response.event.sequence
            return [response.event]

        return _resumed(open_stream, pick)


def _points_after(series: metrics_service_pb2.MetricSeries, cursor: tuple[int, int]) -> metrics_service_pb2.MetricSeries:
    """The series without its points at or before cursor (step, run)."""
    keep = [i for i, point in enumerate(zip(series.steps, series.trial_run_ids)) if point > cursor]
    if len(keep) == len(series.steps):
        return series
    out = metrics_service_pb2.MetricSeries(trial_id=series.trial_id, group=series.group, name=series.name)
    for column in ("steps", "trial_run_ids", "times", "values", "archived"):
        values = getattr(series, column)
        if len(values):
            getattr(out, column).extend(values[i] for i in keep)
    return out


@dataclass(frozen=True)
class SeriesArrays:
    """The raw points of one metric of one trial as numpy columns of equal
    length, in step order. times are microseconds since the Unix epoch;
    archived marks points a restarted run rolled back (all False unless
    include_archived was asked for)."""

    trial_id: int
    group: str
    name: str
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray
    trial_run_ids: np.ndarray
    archived: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


def series_arrays(series: metrics_service_pb2.MetricSeries) -> SeriesArrays:
    # Imported here: the command line, which never needs it, starts without it.
    import numpy as np

    count = len(series.steps)
    archived = np.array(series.archived, dtype=bool) if len(series.archived) else np.zeros(count, dtype=bool)
    return SeriesArrays(
        trial_id=series.trial_id, group=series.group, name=series.name,
        steps=np.array(series.steps, dtype=np.int64), values=np.array(series.values, dtype=np.float64),
        times=np.array(series.times, dtype=np.int64), trial_run_ids=np.array(series.trial_run_ids, dtype=np.int64),
        archived=archived,
    )


def _append_part(merged: metrics_service_pb2.MetricSeries, part: metrics_service_pb2.MetricSeries) -> None:
    """Adds one page's part of a series to what earlier pages gave. A page
    sends archived flags only when one of its points is archived, so the
    missing flags of the other pages are False."""
    if len(part.archived) or len(merged.archived):
        if not len(merged.archived):
            merged.archived.extend([False] * len(merged.steps))
        merged.archived.extend(part.archived if len(part.archived) else [False] * len(part.steps))
    merged.steps.extend(part.steps)
    merged.values.extend(part.values)
    merged.times.extend(part.times)
    merged.trial_run_ids.extend(part.trial_run_ids)
    merged.buckets.extend(part.buckets)


class MetricsApi:
    def __init__(self, stubs: Stubs):
        self._stub = stubs.metrics

    def names(self, trial_ids: int | Iterable[int], *, page_size: int = 0) -> Iterator[metrics_pb2.MetricSummary]:
        """Every metric the trials reported, with its summary, by trial, group and name."""
        request = metrics_service_pb2.ListMetricNamesRequest(trial_ids=_ids(trial_ids), page_size=page_size)
        return _pages(self._stub.ListMetricNames, request, "metrics")

    def latest(
        self, trial_ids: int | Iterable[int], *, group: str = "", page_size: int = 0,
    ) -> Iterator[metrics_pb2.MetricSummary]:
        """The latest value and aggregates of every metric of the trials (of one group when given)."""
        request = metrics_service_pb2.GetLatestMetricsRequest(trial_ids=_ids(trial_ids), group=group, page_size=page_size)
        return _pages(self._stub.GetLatestMetrics, request, "summaries")

    def histories(
        self,
        trial_ids: int | Iterable[int],
        names: str | Iterable[str],
        *,
        group: str = "training",
        start_step: int = 0,
        end_step: int = 0,
        buckets: int = 0,
        axis: int | str | None = None,
        include_archived: bool = False,
        page_size: int = 0,
    ) -> list[metrics_service_pb2.MetricSeries]:
        """One MetricSeries per trial and name, in that order, each whole: raw
        points (every page fetched and joined), or with buckets > 0 at most
        that many buckets keeping first, last, min and max."""
        request = metrics_service_pb2.GetMetricHistoryRequest(
            trial_ids=_ids(trial_ids), group=group, names=[names] if isinstance(names, str) else list(names),
            start_step=start_step, end_step=end_step, buckets=buckets, include_archived=include_archived,
            axis=enum_value(metrics_service_pb2.MetricAxis, "METRIC_AXIS_", axis) if axis is not None else 0,
            page_size=page_size,
        )
        merged: dict[tuple[int, str, str], metrics_service_pb2.MetricSeries] = {}
        for part in _pages(self._stub.GetMetricHistory, request, "series"):
            key = (part.trial_id, part.group, part.name)
            if key not in merged:
                merged[key] = metrics_service_pb2.MetricSeries(trial_id=part.trial_id, group=part.group, name=part.name)
            _append_part(merged[key], part)
        return list(merged.values())

    def history(self, trial_id: int, name: str, *, group: str = "training", **options: Any) -> metrics_service_pb2.MetricSeries:
        """The whole history of one metric of one trial (options as histories takes them)."""
        (series,) = self.histories(trial_id, name, group=group, **options)
        return series

    def history_arrays(
        self, trial_id: int, name: str, *, group: str = "training", start_step: int = 0, end_step: int = 0,
        include_archived: bool = False,
    ) -> SeriesArrays:
        """The raw points of one metric of one trial as numpy columns."""
        series = self.history(
            trial_id, name, group=group, start_step=start_step, end_step=end_step, include_archived=include_archived,
        )
        return series_arrays(series)

    def watch(
        self, trial_id: int, *, names: Iterable[str] = (), after_step: int | None = None,
    ) -> Iterator[metrics_service_pb2.MetricSeries]:
        """New points of the trial's metrics as they are stored (those already
        stored after after_step first), until the trial is terminal."""
        request = metrics_service_pb2.WatchMetricsRequest(trial_id=trial_id, names=list(names), after_step=after_step)
        # One after_step cannot hold every series' cursor: a reopened stream
        # starts where the first did and drops what was delivered already.
        delivered: dict[tuple[str, str], tuple[int, int]] = {}
        opened = 0

        def open_stream() -> ResponseStream:
            nonlocal opened
            opened += 1
            return self._stub.WatchMetrics(request)

        def pick(response) -> list:
            out = []
            for series in response.series:
                key = (series.group, series.name)
                if opened > 1 and key in delivered:
                    series = _points_after(series, delivered[key])
                if series.steps:
                    delivered[key] = (series.steps[-1], series.trial_run_ids[-1])
                    out.append(series)
            return out

        return _resumed(open_stream, pick)


class LogsApi:
    def __init__(self, stubs: Stubs):
        self._stub = stubs.logs

    def list(
        self,
        trial_id: int,
        *,
        from_tail: bool = False,
        levels: Iterable[int | str] | None = None,
        worker: str = "",
        page_size: int = 0,
    ) -> Iterator[log_pb2.TaskLog]:
        """The trial's lines oldest first, or newest first from_tail."""
        request = log_service_pb2.ListLogsRequest(
            trial_id=trial_id, from_tail=from_tail, levels=enum_values(log_pb2.LogLevel, "LOG_LEVEL_", levels),
            worker=worker, page_size=page_size,
        )
        return _pages(self._stub.ListLogs, request, "logs")

    def tail(self, trial_id: int, count: int, **filters: Any) -> builtins.list[log_pb2.TaskLog]:
        """The trial's last count lines, oldest first."""
        newest = self.list(trial_id, from_tail=True, page_size=min(max(count, 1), 5000), **filters)
        return list(itertools.islice(newest, count))[::-1]

    def follow(self, trial_id: int, *, after_id: int = 0) -> Iterator[log_pb2.TaskLog]:
        """The trial's lines after after_id, then new ones as they are stored,
        until the trial is terminal."""
        cursor = after_id

        def open_stream() -> ResponseStream:
            return self._stub.WatchLogs(log_service_pb2.WatchLogsRequest(trial_id=trial_id, after_id=cursor))

        def pick(response) -> Iterable:
            nonlocal cursor
            if response.logs:
                cursor = response.logs[-1].id
            return response.logs

        return _resumed(open_stream, pick)


class CheckpointsApi:
    def __init__(self, stubs: Stubs):
        self._stub = stubs.checkpoints

    def list(
        self,
        trial_id: int = 0,
        *,
        study_id: int = 0,
        states: Iterable[int | str] | int | str | None = None,
        min_steps: int = 0,
        max_steps: int = 0,
        created_after: Time = None,
        created_before: Time = None,
        order_by: str = "",
        page_size: int = 0,
    ) -> Iterator[checkpoint_pb2.Checkpoint]:
        """Every checkpoint matching all the filters given (trial 0 and study 0 are all)."""
        request = checkpoint_service_pb2.ListCheckpointsRequest(
            trial_id=trial_id, study_id=study_id,
            states=enum_values(checkpoint_pb2.CheckpointState, "CHECKPOINT_STATE_", states),
            min_steps=min_steps, max_steps=max_steps, order_by=order_by, page_size=page_size,
        )
        _set_time(request.created_after, created_after)
        _set_time(request.created_before, created_before)
        return _pages(self._stub.ListCheckpoints, request, "checkpoints")

    def get(self, uuid: str) -> checkpoint_pb2.Checkpoint:
        return self._stub.GetCheckpoint(checkpoint_service_pb2.GetCheckpointRequest(uuid=uuid))


class WorkersApi:
    def __init__(self, stubs: Stubs):
        self._stub = stubs.workers

    def list(
        self,
        trial_id: int = 0,
        *,
        trial_run_id: int = 0,
        states: Iterable[int | str] | int | str | None = None,
        page_size: int = 0,
    ) -> Iterator[worker_pb2.Worker]:
        """Every worker matching all the filters given, by id."""
        request = worker_service_pb2.ListWorkersRequest(
            trial_id=trial_id, trial_run_id=trial_run_id,
            states=enum_values(worker_pb2.WorkerState, "WORKER_STATE_", states), page_size=page_size,
        )
        return _pages(self._stub.ListWorkers, request, "workers")

    def get(self, worker_id: int) -> worker_pb2.Worker:
        return self._stub.GetWorker(worker_service_pb2.GetWorkerRequest(id=worker_id))


class TokensApi:
    """Bearer tokens. The secret of a new token is in what create and
    create_for_run return, and nowhere else."""

    def __init__(self, stubs: Stubs):
        self._stub = stubs.tokens

    def create(self, name: str, scopes: Iterable[str] = ("read",), *, studies: Iterable[int] = (),
               service: bool = False, ttl_seconds: int | None = None) -> token_service_pb2.CreateTokenResponse:
        """A user token (a service token with service=True); admin only."""
        request = token_service_pb2.CreateTokenRequest(token=token_pb2.Token(
            name=name, kind=token_pb2.TOKEN_KIND_SERVICE if service else token_pb2.TOKEN_KIND_USER,
            scopes=list(scopes), study_ids=list(studies)))
        if ttl_seconds is not None:
            request.ttl.seconds = ttl_seconds
        return self._stub.CreateToken(request)

    def create_for_run(self, trial_id: int, trial_run_id: int = 0) -> token_service_pb2.CreateTokenResponse:
        """A trial-run token for a trial's current run (or the run named)."""
        return self._stub.CreateTrialRunToken(
            token_service_pb2.CreateTrialRunTokenRequest(trial_id=trial_id, trial_run_id=trial_run_id))

    def list(self, *, include_inactive: bool = False, include_trial_run: bool = False) -> Iterator[token_pb2.Token]:
        """Tokens, newest first, without their secrets; admin only."""
        request = token_service_pb2.ListTokensRequest(include_inactive=include_inactive,
                                                      include_trial_run=include_trial_run)
        return _pages(self._stub.ListTokens, request, "tokens")

    def revoke(self, token_id: int) -> token_pb2.Token:
        return self._stub.RevokeToken(token_service_pb2.RevokeTokenRequest(id=token_id))

    def whoami(self) -> token_service_pb2.WhoAmIResponse:
        return self._stub.WhoAmI(token_service_pb2.WhoAmIRequest())


class ProfilerApi:
    """Reads profiler series (what the agent's system metrics and the
    profiler stream stored): ProfilerApi(client.stubs)."""

    def __init__(self, stubs: Stubs):
        self._stub = stubs.profiler

    def series(self, trial_id: int, *, page_size: int = 0) -> Iterator[profiler_service_pb2.ProfilerSeries]:
        """Every series of the trial with its extent, by name, agent, GPU and type."""
        request = profiler_service_pb2.ListProfilerSeriesRequest(trial_id=trial_id, page_size=page_size)
        return _pages(self._stub.ListProfilerSeries, request, "series")

    def samples(
        self,
        series: Iterable[profiler_pb2.TrialProfilerMetricLabels],
        *,
        buckets: int = 0,
        start_timestamp: int = 0,
        end_timestamp: int = 0,
        page_size: int = 0,
    ) -> builtins.list[profiler_service_pb2.ProfilerSamples]:
        """One ProfilerSamples per series (1 to 100), in that order: raw
        samples (every page fetched and joined), or with buckets > 0 at most
        that many buckets of equal time width keeping min, max and last.
        Timestamps are microseconds since the Unix epoch."""
        labels = builtins.list(series)
        request = profiler_service_pb2.GetProfilerSamplesRequest(
            series=labels, buckets=buckets, start_timestamp=start_timestamp, end_timestamp=end_timestamp,
            page_size=page_size,
        )
        merged = [profiler_service_pb2.ProfilerSamples(labels=label) for label in labels]
        for m in merged:
            m.samples.labels.CopyFrom(m.labels)
        by_key = {m.labels.SerializeToString(deterministic=True): m for m in merged}
        for part in _pages(self._stub.GetProfilerSamples, request, "series"):
            m = by_key[part.labels.SerializeToString(deterministic=True)]
            m.samples.values.extend(part.samples.values)
            m.samples.batches.extend(part.samples.batches)
            m.samples.timestamps.extend(part.samples.timestamps)
            m.buckets.extend(part.buckets)
        return merged
