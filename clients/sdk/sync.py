"""Sending journals that processes left behind: what `trialplane sync` and
an agent finishing a run call.

A journal stays on disk when its process was killed, or closed while the
server could not be reached. Each one names its trial, run and server;
sync_journals() sends what it holds, then reports the state the process
ended in when close() could not (a journal records it), and deletes the
journal once nothing in it is left to send. A journal another live process
holds is skipped, so syncing while training runs is safe.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from trialplane.v1 import trial_pb2, trial_service_pb2

from . import environment
from .channel import TLS
from .client import Client
from .delivery import Delivery
from .errors import FailedPrecondition, NotFound, TrialplaneError
from .journal import Journal, JournalBusy, JournalError, find_journals
from .run import CHANNEL_OPTIONS, HANDLE_RETRY

DEFAULT_SYNC_TIMEOUT = 60.0


@dataclass
class SyncResult:
    """What sync_journals did with one journal file. skipped says why it was
    not sent (in use, damaged), error why sending stopped."""

    path: Path
    trial_id: int = 0
    trial_run_id: int = 0
    address: str = ""
    points_sent: int = 0
    points_pending: int = 0
    points_refused: int = 0
    points_dropped: int = 0
    state_reported: str = ""
    skipped: str = ""
    error: str = ""

    @property
    def done(self) -> bool:
        return not self.skipped and not self.error and self.points_pending == 0


def sync_journals(
    path: str | os.PathLike | None = None,
    *,
    address: str | None = None,
    token: str | None = None,
    tls: bool | str | Path | TLS | None = None,
    trial_id: int | None = None,
    trial_run_id: int | None = None,
    timeout: float = DEFAULT_SYNC_TIMEOUT,
) -> list[SyncResult]:
    """Sends every journal under path (a directory, searched recursively, or
    one journal file; default the journal directory), at most timeout
    seconds in all. address: the server to send to, else
    $TRIALPLANE_ADDRESS, else the server each journal names. trial_id and
    trial_run_id pick only that trial's (and run's) journals."""
    paths = find_journals(environment.journal_dir(path))
    deadline = time.monotonic() + timeout
    chosen_address = address or os.environ.get(environment.ADDRESS) or None
    clients: dict[str, Client] = {}
    results = []
    try:
        for journal_path in paths:
            result = SyncResult(journal_path)
            results.append(result)
            try:
                journal = Journal.open(journal_path, create=False)
            except JournalBusy:
                result.skipped = "in use by a running process"
                continue
            except JournalError as err:
                result.skipped = str(err)
                continue
            result.trial_id, result.trial_run_id = journal.trial_id, journal.trial_run_id
            if (trial_id is not None and journal.trial_id != trial_id) or (
                    trial_run_id is not None and journal.trial_run_id != trial_run_id):
                results.pop()
                journal.close(delete_if_settled=False)
                continue
            target = chosen_address or journal.address or None
            client = clients.get(target or "")
            if client is None:
                client = clients[target or ""] = Client(target, token=token, tls=tls, retry=HANDLE_RETRY,
                                                         channel_options=CHANNEL_OPTIONS)
            result.address = client.address
            _send(client, journal, result, deadline)
    finally:
        for client in clients.values():
            client.close()
    return results


def _send(client: Client, journal: Journal, result: SyncResult, deadline: float) -> None:
    delivery = Delivery(client.channel, [journal])
    try:
        delivery.run(deadline)
        if delivery.last_error is not None and not delivery.settled():
            result.error = str(delivery.last_error)
        if delivery.settled() and journal.final_state:
            result.state_reported = _report_final_state(client, journal, deadline)
    finally:
        result.points_sent = delivery.stats.points_sent
        result.points_refused = delivery.stats.points_refused
        result.points_pending = journal.pending_points
        result.points_dropped = journal.dropped_points
        journal.close()


def _report_final_state(client: Client, journal: Journal, deadline: float) -> str:
    name = trial_pb2.TrialState.Name(journal.final_state).removeprefix("TRIAL_STATE_")
    request = trial_service_pb2.ReportTrialStateRequest(
        id=journal.trial_id, state=journal.final_state, trial_run_id=journal.trial_run_id,
        failure_reason=journal.final_reason,
    )
    try:
        client.stubs.trials.ReportTrialState(request, timeout=max(deadline - time.monotonic(), 1.0))
    except (FailedPrecondition, NotFound):
        # The trial ended, or moved on to another run, meanwhile: nothing to report.
        journal.set_final_state(0)
        return ""
    except TrialplaneError:
        return ""
    journal.set_final_state(0)
    return name
