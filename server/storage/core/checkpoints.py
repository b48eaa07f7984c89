"""Checkpoint rows; the trial's checkpoint totals follow every change."""

from __future__ import annotations

import json

from ...domain import metrics as m
from ...domain.checkpoints import Checkpoint, CheckpointState
from ...domain.errors import NotFound
from ...domain.listing import Page
from ..interface import CheckpointFilter, Paged
from .query import Query, keyset, marks, page_of
from .records import dumps
from .statements import Tx


def to_row(c: Checkpoint) -> dict:
    return {
        "uuid": c.uuid,
        "trial_id": c.trial_id,
        "trial_run_id": c.trial_run_id,
        "state": c.state.value,
        "steps_completed": c.steps_completed,
        "storage_uri": c.storage_uri,
        "size_bytes": c.size_bytes,
        "create_time": c.create_time,
        "update_time": c.update_time,
        "end_time": c.end_time,
        "objective": c.objective,
        "validation_metrics": None if c.validation_metrics is None else dumps(c.validation_metrics),
        "body": dumps({"resources": c.resources, "metadata": c.metadata}),
    }


def from_row(row) -> Checkpoint:
    body = json.loads(row["body"])
    return Checkpoint(
        uuid=row["uuid"], trial_id=row["trial_id"], trial_run_id=row["trial_run_id"], state=CheckpointState(row["state"]),
        steps_completed=row["steps_completed"], storage_uri=row["storage_uri"], create_time=row["create_time"],
        update_time=row["update_time"], end_time=row["end_time"], objective=row["objective"],
        resources=body["resources"], metadata=body["metadata"], validation_metrics=None if row["validation_metrics"] is None else json.loads(row["validation_metrics"]),
    )


def get(tx: Tx, uuid: str) -> Checkpoint | None:
    row = tx.one("SELECT * FROM checkpoints WHERE uuid = ?", (uuid,))
    return None if row is None else from_row(row)


def require(tx: Tx, uuid: str) -> Checkpoint:
    c = get(tx, uuid)
    if c is None:
        raise NotFound("checkpoint", uuid)
    return c


_COLUMNS = ("uuid", "trial_id", "trial_run_id", "state", "steps_completed", "storage_uri", "size_bytes", "create_time",
            "update_time", "end_time", "objective", "validation_metrics", "body")
_SAVE = (
    f"INSERT INTO checkpoints ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
    f" ON CONFLICT (uuid) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _COLUMNS[1:])}"
)


def save(tx: Tx, c: Checkpoint, totals: bool = True) -> None:
    """Inserts or replaces the checkpoint; totals: refresh its trial's
    checkpoint count and size (a change of size or state)."""
    row = to_row(c)
    tx.run(_SAVE, [row[col] for col in _COLUMNS])
    if totals:
        refresh_trial_totals(tx, c.trial_id)


def refresh_trial_totals(tx: Tx, trial_id: int) -> None:
    deleted = CheckpointState.DELETED.value
    tx.run(
        "UPDATE trials SET"
        " checkpoint_size = (SELECT coalesce(sum(size_bytes), 0) FROM checkpoints WHERE trial_id = ? AND state != ?),"
        " checkpoint_count = (SELECT count(*) FROM checkpoints WHERE trial_id = ? AND state != ?)"
        " WHERE id = ?",
        (trial_id, deleted, trial_id, deleted, trial_id),
    )


def at_step(tx: Tx, trial_id: int, steps: int) -> list[Checkpoint]:
    rows = tx.all("SELECT * FROM checkpoints WHERE trial_id = ? AND steps_completed = ?", (trial_id, steps))
    return [from_row(r) for r in rows]


def validation_at(tx: Tx, trial_id: int, steps: int) -> dict | None:
    row = tx.one(
        "SELECT body FROM metric_reports WHERE trial_id = ? AND group_name = ? AND steps = ? AND archived = 0"
        " ORDER BY trial_run_id DESC LIMIT 1",
        (trial_id, m.VALIDATION, steps),
    )
    return None if row is None else json.loads(row[0])["metrics"]


def workload(c: Checkpoint) -> dict:
    return {
        "uuid": c.uuid, "end_time": c.end_time, "state": c.state.value, "resources": c.resources,
        "total_batches": c.steps_completed, "metadata": c.metadata,
    }


def best_of_trials(tx: Tx, trial_ids: list[int]) -> dict[int, dict]:
    """The best completed checkpoint (by signed objective) of each trial that has one."""
    out: dict[int, dict] = {}
    for i in range(0, len(trial_ids), 500):
        part = trial_ids[i:i + 500]
        rows = tx.all(
            f"SELECT * FROM (SELECT c.*, row_number() OVER (PARTITION BY trial_id ORDER BY objective, create_time) AS n"
            f" FROM checkpoints c WHERE trial_id IN ({marks(part)}) AND state = ? AND objective IS NOT NULL) AS ranked"
            f" WHERE n = 1",
            [*part, CheckpointState.COMPLETED.value],
        )
        for row in rows:
            out[row["trial_id"]] = workload(from_row(row))
    return out


def signed(study, metrics: dict | None) -> float | None:
    return None if metrics is None else m.signed_objective(study, metrics)


def of_study(tx: Tx, study_id: int) -> list[Checkpoint]:
    rows = tx.all(
        "SELECT c.* FROM checkpoints c JOIN trials t ON t.id = c.trial_id WHERE t.study_id = ?", (study_id,)
    )
    return [from_row(r) for r in rows]


_ORDER_SQL = {"create_time": "c.create_time", "steps_completed": "c.steps_completed"}
METRIC_ORDER = "metric:"


def list_page(tx: Tx, flt: CheckpointFilter, page: Page) -> Paged[Checkpoint]:
    """A page ordered by creation, steps or a validation metric
    (page.order.field "metric:<name>"; checkpoints without it are left out)."""
    q = Query()
    join = ""
    if flt.study_id:
        join = "JOIN trials t ON t.id = c.trial_id"
        q.add("t.study_id = ?", flt.study_id)
    if flt.trial_id:
        q.add("c.trial_id = ?", flt.trial_id)
    q.one_of("c.state", flt.states)
    if flt.min_steps is not None:
        q.add("c.steps_completed >= ?", flt.min_steps)
    if flt.max_steps is not None:
        q.add("c.steps_completed <= ?", flt.max_steps)
    if flt.created_after is not None:
        q.add("c.create_time > ?", flt.created_after)
    if flt.created_before is not None:
        q.add("c.create_time < ?", flt.created_before)
    field = page.order.field
    if field.startswith(METRIC_ORDER):
        column, column_args = tx.dialect.json_number("c.validation_metrics", "?"), [field[len(METRIC_ORDER):]]
    else:
        column, column_args = _ORDER_SQL[field], []
    ranked = f"SELECT c.*, {column} AS sort_value FROM checkpoints c {join} {q.where()}"
    outer = Query()
    outer.add("c.sort_value IS NOT NULL")
    order = keyset(outer, page, "c", "c.sort_value")
    rows = tx.all(f"SELECT * FROM ({ranked}) AS c {outer.where()} {order} LIMIT ?",
                  [*column_args, *q.args, *outer.args, page.size + 1])
    return Paged(*page_of(rows, page, from_row))
