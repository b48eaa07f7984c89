"""Shortcuts for driving trials through the API in tests."""

from __future__ import annotations

from trialplane.v1 import trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

S = trial_pb2


def new_trial(client, name="t", **fields) -> trial_pb2.Trial:
    return client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name=name, **fields)))


def report(client, trial_id, state, **kw) -> trial_pb2.Trial:
    return client.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial_id, state=state, **kw))


# How to bring a fresh QUEUED trial into each state, as calls on the trial id.
def _to(state):
    return lambda c, i: report(c, i, state)


def _run_then(step):
    def go(c, i):
        report(c, i, S.TRIAL_STATE_RUNNING)
        return step(c, i)

    return go


PATHS = {
    S.TRIAL_STATE_QUEUED: lambda c, i: c.trials.GetTrial(ts.GetTrialRequest(id=i)),
    S.TRIAL_STATE_ACTIVE: _to(S.TRIAL_STATE_ACTIVE),
    S.TRIAL_STATE_PULLING: _to(S.TRIAL_STATE_PULLING),
    S.TRIAL_STATE_STARTING: _to(S.TRIAL_STATE_STARTING),
    S.TRIAL_STATE_RUNNING: _to(S.TRIAL_STATE_RUNNING),
    S.TRIAL_STATE_PAUSED: lambda c, i: c.trials.PauseTrial(ts.PauseTrialRequest(id=i)),
    S.TRIAL_STATE_STOPPING_CANCELED: _run_then(lambda c, i: c.trials.StopTrial(ts.StopTrialRequest(id=i))),
    S.TRIAL_STATE_STOPPING_KILLED: _run_then(lambda c, i: c.trials.KillTrial(ts.KillTrialRequest(id=i))),
    S.TRIAL_STATE_STOPPING_COMPLETED: _run_then(_to(S.TRIAL_STATE_STOPPING_COMPLETED)),
    S.TRIAL_STATE_STOPPING_ERROR: _run_then(_to(S.TRIAL_STATE_STOPPING_ERROR)),
    S.TRIAL_STATE_CANCELED: lambda c, i: c.trials.KillTrial(ts.KillTrialRequest(id=i)),
    S.TRIAL_STATE_COMPLETED: _run_then(_to(S.TRIAL_STATE_COMPLETED)),
    S.TRIAL_STATE_ERROR: _run_then(_to(S.TRIAL_STATE_ERROR)),
}

ALL_STATES = list(PATHS)


def trial_in(client, state, name="t") -> trial_pb2.Trial:
    trial = new_trial(client, name)
    reached = PATHS[state](client, trial.id)
    assert reached.state == state, (S.TrialState.Name(state), S.TrialState.Name(reached.state))
    return reached


def name(state) -> str:
    return S.TrialState.Name(state).removeprefix("TRIAL_STATE_")
