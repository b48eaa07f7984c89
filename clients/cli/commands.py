"""What each command does, through the SDK. A handler takes the Client, the
parsed arguments and the Printer, and returns the exit status."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from google.protobuf import json_format
from trialplane.v1 import checkpoint_pb2, log_pb2, study_pb2, trial_pb2, worker_pb2

from ..sdk import Client, NotFound, SyncResult
from ..sdk import sync_journals as sync
from ..sdk.environment import journal_dir
from ..sdk.values import enum_name, python_value
from . import plot
from .output import Printer, Table, duration, key_values, number, size, when
from .tokens import tokens_create, tokens_list, tokens_revoke, tokens_whoami  # noqa: F401 - handlers by name


class UsageError(Exception):
    """A request the command can tell is wrong without asking the server (exit 2)."""


def _study_id(client: Client, study: str) -> int:
    """A study named on the command line by id or by name."""
    return int(study) if study.isdigit() else client.studies.get(study).id


# Studies

STUDY_TABLE = Table(["ID", "NAME", "STATE", "TRIALS", "OBJECTIVE", "CREATED"], flex="NAME", right={"ID", "TRIALS"})


def _objective(study) -> str:
    kind = {study_pb2.OBJECTIVE_TYPE_MINIMIZE: "min", study_pb2.OBJECTIVE_TYPE_MAXIMIZE: "max"}
    return f"{kind.get(study.objective.type, '?')} {study.objective.metric_name}"


def _study_row(study) -> list[str]:
    return [str(study.id), study.name, enum_name(study_pb2.StudyState, "STUDY_STATE_", study.state), str(study.trial_count),
            _objective(study), when(study.create_time)]


def studies_list(client: Client, args, out: Printer) -> int:
    studies = client.studies.list(name_pattern=args.name or "", states=args.state, tags=args.tag or (),
                                  owner=args.owner or "")
    out.items(studies, STUDY_TABLE, _study_row)
    return 0


def _parameter_line(spec) -> list[str]:
    space = spec.feasible_space
    if space.categories:
        values = ", ".join(space.categories)
    elif space.values:
        values = ", ".join(number(v) for v in space.values)
    else:
        values = f"{number(space.min)} .. {number(space.max)}" + (f" step {number(space.step)}" if space.HasField("step") else "")
    scale = enum_name(study_pb2.ParameterScale, "PARAMETER_SCALE_", spec.scale) if spec.scale else ""
    return [spec.name, enum_name(study_pb2.ParameterType, "PARAMETER_TYPE_", spec.type), values, scale.lower()]


def studies_show(client: Client, args, out: Printer) -> int:
    study = client.studies.get(int(args.study) if args.study.isdigit() else args.study)
    if not out.as_table:
        out.one(study, STUDY_TABLE, _study_row)
        return 0
    limits = ", ".join(f"{k} {v}" for k, v in [("max", study.max_trials), ("parallel", study.parallel_trials)] if v)
    out.text(key_values([
        ("id", str(study.id)), ("name", study.name), ("state", _study_row(study)[2]), ("owner", study.owner),
        ("description", study.description), ("objective", _objective(study)),
        ("trials", f"{study.trial_count}" + (f" ({limits})" if limits else "")),
        ("algorithm", study.algorithm.name), ("tags", ", ".join(study.tags)), ("created", when(study.create_time)),
        ("updated", when(study.update_time)), ("etag", study.etag),
    ]))
    if study.parameters:
        out.text("")
        out.table(Table(["PARAMETER", "TYPE", "VALUES", "SCALE"], flex="VALUES"),
                  (_parameter_line(p) for p in study.parameters))
    return 0


def from_study_file(path: str, use):
    """use(path), with what is wrong with the file itself (missing, not YAML
    or JSON, not a study) as a usage error that names it."""
    try:
        return use(path)
    except OSError as err:
        raise UsageError(f"{path}: {err.strerror or err}") from None
    except ValueError as err:
        raise UsageError(f"{path}: {err}") from None


def studies_create(client: Client, args, out: Printer) -> int:
    study = from_study_file(args.file, client.studies.create)
    out.items([study], STUDY_TABLE, _study_row)
    return 0


def studies_delete(client: Client, args, out: Printer) -> int:
    study = client.studies.delete(_study_id(client, args.study), force=args.force)
    out.items([study], STUDY_TABLE, _study_row)
    return 0


# Trials

TRIAL_TABLE = Table(["ID", "STUDY", "NAME", "STATE", "STEPS", "BEST", "DURATION"], flex="NAME",
                    right={"ID", "STUDY", "STEPS", "BEST", "DURATION"})


class _Objectives:
    """The objective metric of each study a listing names, fetched once per study."""

    def __init__(self, client: Client):
        self.client = client
        self.names: dict[int, str] = {}

    def best(self, trial) -> float | str | None:
        if not trial.study_id or not trial.HasField("best_validation"):
            return None
        if trial.study_id not in self.names:
            try:
                self.names[trial.study_id] = self.client.studies.get(trial.study_id).objective.metric_name
            except NotFound:
                self.names[trial.study_id] = ""
        value = trial.best_validation.metrics.avg_metrics.fields.get(self.names[trial.study_id])
        if value is None:
            return None
        return value.number_value if value.WhichOneof("kind") == "number_value" else value.string_value


def _trial_row(objectives: _Objectives):
    def row(trial) -> list:
        return [str(trial.id), str(trial.study_id) if trial.study_id else "-", trial.name,
                enum_name(trial_pb2.TrialState, "TRIAL_STATE_", trial.state), str(trial.steps_completed),
                objectives.best(trial), duration(trial.wall_clock_seconds)]

    return row


def trials_list(client: Client, args, out: Printer) -> int:
    study_id = _study_id(client, args.study) if args.study else 0
    trials = client.trials.list(study_id, states=args.state, tags=args.tag or (), name_pattern=args.name or "",
                                order_by=args.order_by or "")
    out.items(trials, TRIAL_TABLE, _trial_row(_Objectives(client)))
    return 0


def _validation(workload) -> str:
    values = json_format.MessageToDict(workload.metrics.avg_metrics)
    text = ", ".join(f"{k}={number(v)}" for k, v in sorted(values.items()))
    return f"{text} (step {workload.total_batches})" if text else ""


SUMMARY_TABLE = Table(["GROUP", "NAME", "COUNT", "LAST", "MIN", "MAX", "STEP"], flex="NAME",
                      right={"COUNT", "LAST", "MIN", "MAX", "STEP"})


def _summary_row(summary) -> list:
    return [summary.group, summary.name, summary.count, summary.last, summary.min, summary.max, summary.last_step]


def trials_show(client: Client, args, out: Printer) -> int:
    trial = client.trials.get(args.trial)
    if not out.as_table:
        out.one(trial, TRIAL_TABLE, _trial_row(_Objectives(client)))
        return 0
    hyperparameters = ", ".join(f"{k}={python_value(v)}" for k, v in sorted(trial.hyperparameters.items()))
    checkpoints = f"{trial.checkpoint_count} ({size(trial.total_checkpoint_size_bytes)})" if trial.checkpoint_count else ""
    out.text(key_values([
        ("id", str(trial.id)), ("name", trial.name), ("study", str(trial.study_id or "")),
        ("state", enum_name(trial_pb2.TrialState, "TRIAL_STATE_", trial.state)), ("runner state", trial.runner_state),
        ("run", f"{trial.trial_run_id}" + (f" ({trial.restarts} restarts)" if trial.restarts else "")),
        ("steps", str(trial.steps_completed)), ("hyperparameters", hyperparameters),
        ("best validation", _validation(trial.best_validation) if trial.HasField("best_validation") else ""),
        ("latest validation", _validation(trial.latest_validation) if trial.HasField("latest_validation") else ""),
        ("best checkpoint", trial.best_checkpoint.uuid), ("checkpoints", checkpoints),
        ("running for", duration(trial.wall_clock_seconds)), ("started", when(trial.start_time)),
        ("ended", when(trial.end_time)), ("stop deadline", when(trial.stop_deadline, seconds=True)),
        ("failure reason", trial.failure_reason), ("tags", ", ".join(trial.tags)), ("notes", trial.notes),
        ("created", when(trial.create_time)), ("etag", trial.etag),
    ]))
    if trial.summary_metrics:
        out.text("")
        out.table(SUMMARY_TABLE, (_summary_row(s) for s in trial.summary_metrics))
    return 0


def trials_transition(client: Client, args, out: Printer) -> int:
    """stop, kill, pause, activate, restart: the trial as it is afterwards."""
    verb = getattr(client.trials, args.verb)
    options = {"message": args.message or ""}
    if args.verb == "stop" and args.grace is not None:
        options["grace_period"] = args.grace
    trial = verb(args.trial, **options)
    out.items([trial], TRIAL_TABLE, _trial_row(_Objectives(client)))
    return 0


EVENT_TABLE = Table(["SEQ", "TIME", "FROM", "TO", "RUN", "MESSAGE"], flex="MESSAGE", right={"SEQ", "RUN"})
# Widths for --follow, which cannot measure rows it has not seen; MESSAGE takes the rest.
EVENT_WIDTHS = [4, 19, 17, 17, 3, 0]


def _event_row(event) -> list[str]:
    return [str(event.sequence), when(event.time, seconds=True),
            enum_name(trial_pb2.TrialState, "TRIAL_STATE_", event.from_state),
            enum_name(trial_pb2.TrialState, "TRIAL_STATE_", event.to_state), str(event.trial_run_id), event.message]


def trials_events(client: Client, args, out: Printer) -> int:
    if args.follow:
        out.stream(client.trials.watch(args.trial), EVENT_TABLE, _event_row, EVENT_TABLE.fit(EVENT_WIDTHS))
    else:
        out.items(client.trials.events(args.trial), EVENT_TABLE, _event_row)
    return 0


# Metrics

def _resolve_metrics(client: Client, trial_id: int, names: list[str], group: str | None) -> tuple[str, list[str]]:
    """The group and names a metrics command reads: the names given, in the
    group given or the one group that holds them; or every name of the group."""
    summaries = list(client.metrics.names(trial_id))
    if not names:
        names = [s.name for s in summaries if s.group == group]
        if not names:
            raise UsageError(f"trial {trial_id} has no metrics in group {group!r}")
        return group or "", names
    if group is not None:
        return group, names
    groups = sorted({s.group for s in summaries if s.name in names})
    if len(groups) == 1:
        return groups[0], names
    if not groups:
        raise UsageError(f"trial {trial_id} has no metric named {', '.join(names)}")
    raise UsageError(f"{', '.join(names)} is in the groups {', '.join(groups)}; pick one with --group")


# Rows of the chart, axes and legend included.
PLOT_HEIGHT = 20

# A row per point for --follow, which cannot measure rows it has not seen; NAME takes the rest.
POINT_TABLE = Table(["STEP", "GROUP", "NAME", "VALUE"], flex="NAME", right={"STEP", "VALUE"})
POINT_WIDTHS = [10, 12, 0, 12]


def metrics_follow(client: Client, args, out: Printer) -> int:
    """New points as they are stored (from the first one), until the trial ends."""
    client.trials.get(args.trial, fields=["id"])
    series = client.metrics.watch(args.trial, names=args.name or ())
    if args.group is not None:
        series = (s for s in series if s.group == args.group)
    batches = ((s, [[step, s.group, s.name, value] for step, value in zip(s.steps, s.values)]) for s in series)
    out.stream_rows(batches, POINT_TABLE, POINT_TABLE.fit(POINT_WIDTHS))
    return 0


def metrics_show(client: Client, args, out: Printer) -> int:
    if getattr(args, "follow", False):
        if args.plot:
            raise UsageError("--follow prints the points as rows; leave out --plot")
        return metrics_follow(client, args, out)
    names = args.name or []
    if not names and args.group is None:
        out.items(client.metrics.names(args.trial), SUMMARY_TABLE, _summary_row)
        return 0
    group, names = _resolve_metrics(client, args.trial, names, args.group)
    if getattr(args, "log_y", False) and not getattr(args, "plot", False):
        raise UsageError("--log-y is for --plot")
    if getattr(args, "plot", False):
        if not out.as_table:
            raise UsageError("--plot draws a chart; leave out -o to see it, or --plot for the points")
        return _plot(client, args.trial, names, group, out, getattr(args, "log_y", False))
    histories = client.metrics.histories(args.trial, names, group=group)
    if out.output in ("json", "yaml"):
        out.items(histories, SUMMARY_TABLE, _summary_row)
        return 0
    by_step: dict[int, dict[str, float]] = {}
    for series in histories:
        for step, value in zip(series.steps, series.values):
            by_step.setdefault(step, {})[series.name] = value
    table = Table(["STEP", *names], right={"STEP", *names})
    rows = ([step] + [values.get(n) for n in names] for step, values in sorted(by_step.items()))
    if out.output == "csv":
        out.csv_rows(table.headers, rows)
    else:
        out.table(table, rows)
    return 0


def _plot(client: Client, trial_id: int, names: list[str], group: str, out: Printer, log_y: bool) -> int:
    width = max(40, shutil.get_terminal_size((80, 24)).columns - 2)
    curves = []
    # Buckets keep each stretch's first, last, min and max, so spikes show.
    for series in client.metrics.histories(trial_id, names, group=group, buckets=width):
        buckets = [plot.Bucket(b.first_step, b.last_step, b.first, b.last, b.min, b.max) for b in series.buckets]
        curves.append(plot.Curve(series.name, buckets))
    try:
        out.text(plot.render(curves, width=width, height=PLOT_HEIGHT, log_y=log_y, styled=out.styled))
    except plot.PlotError as err:
        raise UsageError(str(err)) from None
    return 0


# Logs

def _log_line(line) -> str:
    level = enum_name(log_pb2.LogLevel, "LOG_LEVEL_", line.level or log_pb2.LOG_LEVEL_INFO)
    source = f"[{line.worker}] " if line.worker else ""
    return f"{when(line.time, seconds=True)} {level:<8} {source}{line.message}"


# The columns of -o csv; a table prints each line as _log_line writes it.
LOG_TABLE = Table(["ID", "TIME", "LEVEL", "WORKER", "MESSAGE"], flex="MESSAGE", right={"ID"})


def _log_row(line) -> list:
    return [line.id, when(line.time, seconds=True),
            enum_name(log_pb2.LogLevel, "LOG_LEVEL_", line.level or log_pb2.LOG_LEVEL_INFO), line.worker, line.message]


def logs_show(client: Client, args, out: Printer) -> int:
    client.trials.get(args.trial, fields=["id"])

    def lines() -> Iterable:
        last_id = 0
        first: Iterable
        if args.tail is not None:
            first = client.logs.tail(args.trial, args.tail)
        else:
            first = [] if args.follow else client.logs.list(args.trial)
        for line in first:
            last_id = line.id
            yield line
        if args.follow:
            yield from client.logs.follow(args.trial, after_id=last_id)

    if out.as_table:
        for line in lines():
            out.text(_log_line(line))
    else:
        out.stream_rows(((line, [_log_row(line)]) for line in lines()), LOG_TABLE, [])
    return 0


# Checkpoints and workers

CHECKPOINT_TABLE = Table(["UUID", "STATE", "STEPS", "SIZE", "CREATED"], flex="UUID", right={"STEPS", "SIZE"})


def _checkpoint_row(checkpoint) -> list[str]:
    return [checkpoint.uuid, enum_name(checkpoint_pb2.CheckpointState, "CHECKPOINT_STATE_", checkpoint.state),
            str(checkpoint.steps_completed), size(checkpoint.size_bytes), when(checkpoint.create_time)]


def checkpoints_list(client: Client, args, out: Printer) -> int:
    client.trials.get(args.trial, fields=["id"])
    out.items(client.checkpoints.list(args.trial), CHECKPOINT_TABLE, _checkpoint_row)
    return 0


WORKER_TABLE = Table(["ID", "RANK", "TYPE", "STATE", "RUN", "ADDRESS", "HEARTBEAT"], flex="ADDRESS",
                     right={"ID", "RANK", "RUN"})


def _worker_row(worker) -> list[str]:
    return [str(worker.id), str(worker.rank), worker.type, enum_name(worker_pb2.WorkerState, "WORKER_STATE_", worker.state),
            str(worker.trial_run_id), worker.address, when(worker.last_heartbeat_time, seconds=True)]


def workers_list(client: Client, args, out: Printer) -> int:
    client.trials.get(args.trial, fields=["id"])
    out.items(client.workers.list(args.trial), WORKER_TABLE, _worker_row)
    return 0


# Journals

# A journal's name says its trial and run.
SYNC_TABLE = Table(["JOURNAL", "SENT", "LEFT", "NOTE"], flex="NOTE", right={"SENT", "LEFT"})


def _sync_note(result: SyncResult) -> str:
    notes = [result.skipped or result.error]
    if result.points_refused:
        notes.append(f"{result.points_refused} refused by the server")
    if result.points_dropped:
        notes.append(f"{result.points_dropped} dropped earlier (journal full)")
    if result.state_reported:
        notes.append(f"reported {result.state_reported}")
    return "; ".join(n for n in notes if n)


def sync_journals(client: Client, args, out: Printer) -> int:
    if args.path and not os.path.exists(args.path):
        raise UsageError(f"{args.path}: no such file or directory")
    results = sync(args.path, address=args.address, token=client.token, tls=client.tls or False, timeout=args.timeout)
    if not out.as_table:
        records = [{
            "path": str(r.path), "trial_id": r.trial_id, "trial_run_id": r.trial_run_id, "address": r.address,
            "points_sent": r.points_sent, "points_pending": r.points_pending, "points_refused": r.points_refused,
            "points_dropped": r.points_dropped, "state_reported": r.state_reported, "skipped": r.skipped,
            "error": r.error,
        } for r in results]
        if out.output == "csv":
            out.csv_rows(SYNC_TABLE.headers,
                         ([str(r.path), r.points_sent, r.points_pending, _sync_note(r)] for r in results))
        else:
            out.items(records, SYNC_TABLE, None)
        return 0 if all(r.done for r in results) else 1
    root = Path(args.path) if args.path else journal_dir()

    def shown(path: Path) -> str:
        return str(path.relative_to(root)) if root.is_dir() and path.is_relative_to(root) else str(path)

    if results:
        if root.is_dir():
            out.text(f"journals in {root}:")
        out.table(SYNC_TABLE, ([shown(r.path), r.points_sent, r.points_pending, _sync_note(r)] for r in results))
    sent = sum(r.points_sent for r in results)
    remain = sum(r.points_pending for r in results)
    out.text(f"sent {sent} points from {len(results)} journals; {remain} points remain")
    return 0 if all(r.done for r in results) else 1
