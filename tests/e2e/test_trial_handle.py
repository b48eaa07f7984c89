"""The trial handle (trialplane.client.init) against a real server: points
come back exactly, survive the server going away and the training process
being killed, a full journal drops its oldest points, close() keeps its time
bound, should_stop() sees a stop within a second, and the run's state is
reported unless an agent does it."""

import logging
import math
import os
import selectors
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from support import ServerThread, start_server, tool
from support.postgres import database_url
from support.proxy import FAIL_AFTER
from trialplane.client import Client, init, sync_journals
from trialplane.client.cli import main
from trialplane.client.sdk import environment
from trialplane.client.sdk.journal import (
    HEADER_SIZE,
    RECORD_SIZE,
    Journal,
    journal_name,
    names_blob,
    server_directory,
)
from trialplane.server.config import ServerConfig
from trialplane.v1 import metrics_pb2, trial_pb2
from trialplane.v1 import metrics_service_pb2 as ms

COLUMNS = "MetricsService/ReportMetricColumns"

# A training script that logs and then waits to be killed.
CHILD = """\
import sys
from trialplane.client import init

run = init()
for step in range(int(sys.argv[1])):
    run.log(step, {"loss": 1.0 / (step + 1), "lr": step * 1e-5})
print("logged", run.journal_path, flush=True)
sys.stdin.read()
"""

# One that never closes its run: the exit handler does.
EXITING_CHILD = """\
import sys
from trialplane.client import init

run = init()
for step in range(1000):
    run.log(step, {"loss": step * 0.5})
if sys.argv[1] == "raise":
    raise ValueError("bad batch")
"""

# One that trains until it is stopped.
ENDLESS_CHILD = """\
from trialplane.client import init

run = init()
step = 0
while True:
    run.log(step, {"loss": step * 0.5})
    if step == 5000:
        print("ready", flush=True)
    step += 1
"""


class RestartableServer:
    """A server that a test takes down and brings back on the same port and database."""

    def __init__(self, db_path):
        self.db_path = db_path
        self.thread: ServerThread | None = start_server(db_path)
        self.port = self.thread.app.port
        self.address = f"127.0.0.1:{self.port}"

    def down(self) -> None:
        self.thread.stop()
        self.thread = None

    def up(self) -> None:
        config = ServerConfig(port=self.port, db_path=database_url(self.db_path), watchdog_interval=0,
                              retention_interval=0, auth=False)
        self.thread = ServerThread(config).start()

    def close(self) -> None:
        if self.thread is not None:
            self.thread.stop()


@pytest.fixture
def restartable(db_path):
    srv = RestartableServer(db_path)
    yield srv
    srv.close()


@pytest.fixture
def journals(tmp_path):
    return tmp_path / "journals"


@pytest.fixture(autouse=True)
def no_trial_environment(monkeypatch):
    for name in (environment.ADDRESS, environment.TOKEN, environment.TRIAL_ID, environment.TRIAL_RUN_ID,
                 environment.JOURNAL_DIR, environment.AGENT):
        monkeypatch.delenv(name, raising=False)


def training_environment(address, trial, journals) -> dict[str, str]:
    """What a training process started without an agent is given."""
    return {**os.environ, environment.ADDRESS: address, environment.TRIAL_ID: str(trial.id),
            environment.TRIAL_RUN_ID: str(trial.trial_run_id), environment.JOURNAL_DIR: str(journals)}


def new_trial(client, name="t", **hparams):
    return client.trials.create(name=name, hyperparameters=hparams or {"lr": 0.01})


def history(client, trial_id, name, group="training"):
    return client.metrics.history_arrays(trial_id, name, group=group)


def state_of(client, trial_id) -> str:
    return trial_pb2.TrialState.Name(client.trials.get(trial_id).state).removeprefix("TRIAL_STATE_")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            raise AssertionError(f"no output from the child: {proc.stderr.read() if proc.poll() is not None else ''}")
    return proc.stdout.readline()


def killed_mid_run(tmp_path, proxy, trial, journals, steps):
    """Runs CHILD against the proxy: its first batch is stored but the answer
    lost, then the server is cut off; SIGKILLs it once it logged everything.
    Returns the journal it left."""
    script = tmp_path / "train.py"
    script.write_text(CHILD)
    proxy.fail(COLUMNS, FAIL_AFTER, FAIL_AFTER)
    proxy.block(COLUMNS)
    env = training_environment(proxy.address, trial, journals)
    proc = subprocess.Popen([sys.executable, str(script), str(steps)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = read_line(proc, 60)
        assert line.startswith("logged"), line
        wait_for(lambda: len(proxy.attempts_of(COLUMNS)) >= 3, 30, "the child's sender to be cut off")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()
        proc.stderr.close()
    path = server_directory(journals, proxy.address) / journal_name(trial.id, trial.trial_run_id)
    assert path.exists()
    return path


def assert_child_points(client, trial_id, steps):
    expected = np.arange(steps)
    loss, lr = history(client, trial_id, "loss"), history(client, trial_id, "lr")
    assert np.array_equal(loss.steps, expected) and np.array_equal(lr.steps, expected)
    assert np.array_equal(loss.values, np.array([1.0 / (s + 1) for s in range(steps)]))
    assert np.array_equal(lr.values, np.array([s * 1e-5 for s in range(steps)]))


def test_100k_points_logged_in_a_tight_loop_come_back_exactly(sdk, server, journals):
    trial = new_trial(sdk)
    steps, names = 25_000, ["loss", "acc", "grad_norm", "lr"]
    values = np.random.default_rng(7).standard_normal((steps, len(names)))
    values[::997, 0] = math.nan
    values[5, 1], values[6, 1] = math.inf, -math.inf
    started = time.time_ns() // 1000
    run = init(trial.id, address=server.address, journal_dir=journals)
    for step in range(steps):
        row = values[step]
        run.log(step, {"loss": row[0], "acc": row[1], "grad_norm": row[2], "lr": row[3]})
        if step % 1000 == 999:
            run.log(step, {"val_loss": float(row[0])}, group="validation")
    result = run.close()
    ended = time.time_ns() // 1000
    assert (result.points_sent, result.points_pending, result.journal) == (steps * 4 + 25, 0, None)
    assert not run.journal_path.exists()
    for j, name in enumerate(names):
        series = history(sdk, trial.id, name)
        assert np.array_equal(series.steps, np.arange(steps))
        assert np.array_equal(series.values, values[:, j], equal_nan=True)
        assert np.all(np.diff(series.times) >= 0) and started <= series.times[0] and series.times[-1] <= ended
    validation = history(sdk, trial.id, "val_loss", group="validation")
    assert np.array_equal(validation.steps, np.arange(999, steps, 1000))


def test_points_logged_while_the_server_is_down_arrive_once_it_is_back(restartable, journals):
    with Client(restartable.address) as tp:
        trial = new_trial(tp)
    run = init(trial.id, address=restartable.address, journal_dir=journals)
    for step in range(10_000):
        run.log(step, {"x": step * 0.5})
    assert run.flush(30)
    size_before = run.journal_path.stat().st_size
    restartable.down()
    for step in range(10_000, 110_000):  # 100k points with no server: log() only appends
        run.log(step, {"x": step * 0.5})
    assert run.pending_points == 100_000
    assert run.journal_path.stat().st_size > size_before
    restartable.up()
    assert run.flush(60)
    assert run.close().points_pending == 0
    with Client(restartable.address) as tp:
        series = history(tp, trial.id, "x")
        assert state_of(tp, trial.id) == "COMPLETED"
    assert np.array_equal(series.steps, np.arange(110_000))
    assert np.array_equal(series.values, np.arange(110_000) * 0.5)


def test_a_process_killed_mid_run_leaves_a_journal_the_next_init_sends(tmp_path, sdk, proxy, journals):
    trial = new_trial(sdk)
    steps = 30_000
    path = killed_mid_run(tmp_path, proxy, trial, journals, steps)
    stored_before = history(sdk, trial.id, "loss")
    assert 0 < len(stored_before) < steps  # one batch went through before the cut
    proxy.unblock()
    child_attempts = len(proxy.attempts_of(COLUMNS))
    run = init(trial.id, address=proxy.address, journal_dir=journals)
    assert run.journal_path == path and run.pending_points == 2 * steps
    result = run.close()
    # The batch the child had in flight goes first, as it was: the server answers it as the first time.
    sent = [ms.ReportMetricColumnsRequest.FromString(a.request).request_id for a in proxy.attempts_of(COLUMNS)]
    assert sent[child_attempts] == sent[child_attempts - 1]
    assert (result.points_pending, result.journal) == (0, None)
    assert not path.exists()
    assert_child_points(sdk, trial.id, steps)


def test_trialplane_sync_sends_what_a_killed_process_left(tmp_path, sdk, proxy, journals, capsys):
    trial = new_trial(sdk)
    steps = 30_000
    path = killed_mid_run(tmp_path, proxy, trial, journals, steps)
    proxy.unblock()
    status = main(["sync", str(journals), "--timeout", "60"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert f"{2 * steps}" in out and "0 points remain" in out
    assert not path.exists()
    assert_child_points(sdk, trial.id, steps)
    assert state_of(sdk, trial.id) == "RUNNING"  # the child was killed: nobody said how it ended
    assert main(["sync", str(path)]) == 2  # gone now
    assert "no such file or directory" in capsys.readouterr().err


def test_a_torn_journal_tail_is_cut_and_the_rest_sent(sdk, server, journals, caplog):
    trial = new_trial(sdk)
    path = server_directory(journals, server.address) / journal_name(trial.id, trial.trial_run_id)
    journal = Journal.open(path, trial_id=trial.id, trial_run_id=trial.trial_run_id, address=server.address)
    blob = names_blob("training", ["loss"])
    for step in range(1000):
        journal.append_points(step, 1_700_000_000_000_000 + step, blob, (step * 0.25,))
    last = list(journal.records())[-1]
    journal.release()  # as SIGKILL in the middle of the last append leaves it
    with open(path, "r+b") as f:
        f.seek(HEADER_SIZE + last.offset % journal.capacity + RECORD_SIZE)
        f.write(b"\x00\x01\x02")
    with caplog.at_level(logging.INFO, logger="trialplane.client"):
        run = init(trial.id, address=server.address, journal_dir=journals)
        run.close()
    assert f"{path} ended in a torn record at offset {last.offset}" in caplog.text
    series = history(sdk, trial.id, "loss")
    assert np.array_equal(series.steps, np.arange(999))
    assert np.array_equal(series.values, np.arange(999) * 0.25)


def test_journals_of_several_earlier_processes_of_the_run_are_all_sent(sdk, server, journals):
    trial = new_trial(sdk)
    directory = server_directory(journals, server.address)
    blob = names_blob("training", ["loss"])
    for index, steps in ((1, range(0, 500)), (2, range(500, 800))):  # two processes of one run, both killed
        journal = Journal.open(directory / journal_name(trial.id, 1, index), trial_id=trial.id, trial_run_id=1,
                               address=server.address)
        for step in steps:
            journal.append_points(step, 0, blob, (float(step),))
        journal.release()
    with init(trial.id, address=server.address, journal_dir=journals) as run:
        assert run.pending_points == 800
        assert sync_journals(journals)[0].skipped == "in use by a running process"
        run.log(800, {"loss": 800.0})
    assert np.array_equal(history(sdk, trial.id, "loss").steps, np.arange(801))
    assert not any(directory.iterdir())


def test_a_full_journal_drops_the_oldest_points_and_says_how_many(sdk, proxy, journals, caplog):
    trial = new_trial(sdk)
    proxy.block(COLUMNS)
    steps = 20_000
    with caplog.at_level(logging.WARNING, logger="trialplane.client"):
        run = init(trial.id, address=proxy.address, journal_dir=journals, journal_capacity=256 << 10)
        for step in range(steps):
            run.log(step, {"x": float(step)})
        dropped = run.dropped_points
        proxy.unblock()
        assert run.flush(60)
        result = run.close()
    stored = history(sdk, trial.id, "x").steps
    assert dropped > steps // 2 and result.points_dropped == dropped
    assert f"{dropped} of the oldest unsent points were dropped" in caplog.text
    # The batch the sender held when the server went away, then the newest:
    # whatever is missing was dropped, and counted.
    runs = np.split(stored, np.flatnonzero(np.diff(stored) > 1) + 1)
    assert len(runs) == 2 and runs[1][-1] == steps - 1
    assert all(np.array_equal(r, np.arange(r[0], r[0] + len(r))) for r in runs)
    assert len(stored) + dropped == steps


def test_close_with_the_server_down_returns_in_time_and_names_the_journal(restartable, journals, caplog):
    with Client(restartable.address) as tp:
        trial = new_trial(tp)
    run = init(trial.id, address=restartable.address, journal_dir=journals)
    for step in range(1000):
        run.log(step, {"x": float(step)})
    assert run.flush(30)
    restartable.down()
    for step in range(1000, 6000):
        run.log(step, {"x": float(step)})
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="trialplane.client"):
        result = run.close(timeout=2)
    assert time.monotonic() - started <= 2 + 1
    assert (result.points_pending, result.journal, result.state_reported) == (5000, run.journal_path, "")
    assert f"5000 points of trial {trial.id} run 1 could not be sent" in caplog.text
    assert f"trialplane sync {run.journal_path}" in caplog.text

    restartable.up()
    with Client(restartable.address) as tp:
        assert state_of(tp, trial.id) == "RUNNING"
        (result,) = sync_journals(run.journal_path)
        assert (result.points_sent, result.points_pending, result.state_reported) == (5000, 0, "COMPLETED")
        assert np.array_equal(history(tp, trial.id, "x").steps, np.arange(6000))
        assert state_of(tp, trial.id) == "COMPLETED"
    assert not run.journal_path.exists()


def test_close_returns_in_time_when_the_server_stops_answering(sdk, proxy, journals):
    trial = new_trial(sdk)
    run = init(trial.id, address=proxy.address, journal_dir=journals)
    proxy.block(hang=True)
    for step in range(100):
        run.log(step, {"x": float(step)})
    started = time.monotonic()
    result = run.close(timeout=1)
    assert time.monotonic() - started <= 1 + 1
    assert result.points_pending == 100 and result.journal.exists()


def test_should_stop_sees_a_stop_request_within_a_second(sdk, server, journals):
    trial = new_trial(sdk)
    run = init(trial.id, address=server.address, journal_dir=journals)
    assert not run.should_stop()
    sdk.trials.stop(trial.id, message="enough", grace_period=60)
    started = time.monotonic()
    while not run.should_stop() and time.monotonic() - started < 1.0:
        time.sleep(0.005)
    assert run.should_stop(), "should_stop() did not turn true within 1 s"
    assert run.stop_reason == "enough"
    assert run.close().state_reported == "CANCELED"
    assert state_of(sdk, trial.id) == "CANCELED"


def test_should_stop_sees_an_early_stopping_decision_within_a_second(sdk, server, journals):
    study = sdk.studies.create({
        "name": "judged", "objective": {"metricName": "val_loss", "type": "OBJECTIVE_TYPE_MINIMIZE"},
        "parameters": [{"name": "lr", "type": "PARAMETER_TYPE_DOUBLE", "feasibleSpace": {"min": 0.001, "max": 0.1}}],
        "earlyStopping": {"name": "medianstop", "settings": [{"name": "min_trials_required", "value": "2"},
                                                             {"name": "start_step", "value": "2"}]},
    })
    good_a, good_b, judged = sdk.studies.suggest(study.id, 3, start=True).trials
    for trial, loss in ((good_a, 0.5), (good_b, 0.6)):
        for step in (1, 2, 3):
            sdk.stubs.metrics.ReportMetrics(ms.ReportMetricsRequest(metrics=metrics_pb2.TrialMetrics(
                trial_id=trial.id, steps_completed=step, metrics=metrics_pb2.Metrics(avg_metrics={"val_loss": loss})),
                group="validation"))
    run = init(judged.id, address=server.address, journal_dir=journals)
    for step in (1, 2):
        run.log(step, {"val_loss": 3.0}, group="validation")
    wait_for(lambda: state_of(sdk, judged.id) == "STOPPING_CANCELED", 10, "the rule to stop the trial")
    started = time.monotonic()
    while not run.should_stop() and time.monotonic() - started < 1.0:
        time.sleep(0.005)
    assert run.should_stop(), "should_stop() did not turn true within 1 s of the rule's decision"
    assert run.stop_reason.startswith("early stopping (medianstop): ")
    assert run.close().state_reported == "CANCELED"
    assert {state_of(sdk, t.id) for t in (good_a, good_b)} == {"RUNNING"}


def test_should_stop_sees_a_restart_that_started_a_newer_run(sdk, server, journals):
    trial = new_trial(sdk)
    run = init(trial.id, address=server.address, journal_dir=journals)
    sdk.trials.restart(trial.id)
    started = time.monotonic()
    while not run.should_stop() and time.monotonic() - started < 1.0:
        time.sleep(0.005)
    assert run.should_stop() and "newer run" in run.stop_reason
    run.close(timeout=1)


def test_without_an_agent_init_reports_running_and_close_completed(sdk, server, journals):
    trial = new_trial(sdk, lr=0.5, layers=3, optimizer="adam", nesterov=True)
    with init(trial.id, address=server.address, journal_dir=journals) as run:
        assert run.hparams == {"lr": 0.5, "layers": 3, "optimizer": "adam", "nesterov": True}
        assert (run.trial_id, run.run_id) == (trial.id, 1)
        assert state_of(sdk, trial.id) == "RUNNING"
        run.log(0, {"loss": 1.0})
    assert state_of(sdk, trial.id) == "COMPLETED"
    assert [e.to_state for e in sdk.trials.events(trial.id)][-2:] == [trial_pb2.TRIAL_STATE_RUNNING,
                                                                       trial_pb2.TRIAL_STATE_COMPLETED]


def test_a_with_block_that_raises_ends_the_trial_in_error(sdk, server, journals):
    trial = new_trial(sdk)
    with pytest.raises(RuntimeError, match="diverged"):
        with init(trial.id, address=server.address, journal_dir=journals) as run:
            run.log(0, {"loss": math.nan})
            raise RuntimeError("loss diverged")
    ended = sdk.trials.get(trial.id)
    assert ended.state == trial_pb2.TRIAL_STATE_ERROR and ended.failure_reason == "RuntimeError: loss diverged"
    assert math.isnan(history(sdk, trial.id, "loss").values[0])

    # An error whose text the server would refuse (a NUL, read from a file) still ends the trial.
    other = new_trial(sdk)
    with pytest.raises(ValueError):
        with init(other.id, address=server.address, journal_dir=journals):
            raise ValueError("bad header b'\x00\x00'" + "!" * 1000)
    ended = sdk.trials.get(other.id)
    assert ended.state == trial_pb2.TRIAL_STATE_ERROR and ended.failure_reason.startswith("ValueError: bad header")
    assert "\x00" not in ended.failure_reason and len(ended.failure_reason) == 500


@pytest.mark.parametrize("ending, state", [("return", "COMPLETED"), ("raise", "ERROR")])
def test_a_script_that_never_closes_its_run_is_flushed_at_exit(tmp_path, sdk, server, journals, ending, state):
    trial = new_trial(sdk)
    script = tmp_path / "train.py"
    script.write_text(EXITING_CHILD)
    env = training_environment(server.address, trial, journals)
    done = subprocess.run([sys.executable, str(script), ending], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == (0 if ending == "return" else 1), done.stderr
    assert np.array_equal(history(sdk, trial.id, "loss").steps, np.arange(1000))
    ended = sdk.trials.get(trial.id)
    assert state_of(sdk, trial.id) == state
    assert ended.failure_reason == ("" if ending == "return" else "ValueError: bad batch")


def test_sigterm_after_a_stop_closes_the_run_before_the_process_exits(tmp_path, sdk, server, journals):
    trial = new_trial(sdk)
    script = tmp_path / "train.py"
    script.write_text(ENDLESS_CHILD)
    proc = subprocess.Popen([sys.executable, str(script)], env=training_environment(server.address, trial, journals),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert read_line(proc, 60).startswith("ready")
        sdk.trials.stop(trial.id, grace_period=60)
        proc.send_signal(signal.SIGTERM)  # what an agent does on a stop
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    steps = history(sdk, trial.id, "loss").steps
    assert len(steps) > 5000 and np.array_equal(steps, np.arange(len(steps)))  # every point up to the end
    assert state_of(sdk, trial.id) == "CANCELED"
    assert not list(journals.rglob("*.journal"))


def test_a_forked_child_cannot_log_to_its_parents_run(sdk, server, journals):
    trial = new_trial(sdk)
    with init(trial.id, address=server.address, journal_dir=journals) as run:
        pid = os.fork()
        if pid == 0:
            try:
                run.log(1, {"x": 1.0})
            except RuntimeError as err:
                os._exit(0 if "forked child" in str(err) else 2)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        run.log(1, {"x": 2.0})
    assert history(sdk, trial.id, "x").values.tolist() == [2.0]


def test_under_trialplane_agent_the_handle_reports_points_and_the_agent_the_state(tmp_path, sdk, server, journals):
    trial = new_trial(sdk, lr=0.25)
    script = tmp_path / "train.py"
    script.write_text(
        "from trialplane.client import init\n"
        "with init() as run:\n"
        "    print('agent_managed', run.agent_managed, run.hparams['lr'], flush=True)\n"
        "    for step in range(2000):\n"
        "        run.log(step, {'loss': step * run.hparams['lr']})\n"
    )
    done = subprocess.run(
        [tool("trialplane"), "--address", server.address, "agent", "--trial", str(trial.id),
         "--journal-dir", str(journals), "--", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "agent_managed True 0.25" in done.stdout
    series = history(sdk, trial.id, "loss")
    assert np.array_equal(series.steps, np.arange(2000)) and np.array_equal(series.values, np.arange(2000) * 0.25)
    assert state_of(sdk, trial.id) == "COMPLETED"
    assert not list(journals.rglob("*.journal"))


def test_with_an_agent_the_handle_reports_no_state(sdk, server, journals, monkeypatch):
    trial = new_trial(sdk)
    monkeypatch.setenv(environment.ADDRESS, server.address)
    monkeypatch.setenv(environment.TRIAL_ID, str(trial.id))
    monkeypatch.setenv(environment.TRIAL_RUN_ID, str(trial.trial_run_id))
    monkeypatch.setenv(environment.JOURNAL_DIR, str(journals))
    monkeypatch.setenv(environment.AGENT, "1")
    with init() as run:
        assert run.agent_managed and run.trial_id == trial.id
        assert run.journal_path.parent.parent == journals
        run.log(3, {"loss": 0.25})
    assert state_of(sdk, trial.id) == "QUEUED"
    assert history(sdk, trial.id, "loss").steps.tolist() == [3]


def test_a_checkpoint_is_reported_after_the_points_before_it(sdk, server, journals, tmp_path):
    trial = new_trial(sdk)
    model = tmp_path / "ckpt"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"x" * 1234)
    with init(trial.id, address=server.address, journal_dir=journals) as run:
        run.log(10, {"val_loss": 0.125}, group="validation")
        uuid = run.checkpoint(10, files=model, storage_uri=f"file://{model}", metadata={"epoch": 1})
    checkpoint = sdk.checkpoints.get(uuid)
    assert (checkpoint.trial_id, checkpoint.steps_completed, checkpoint.size_bytes) == (trial.id, 10, 1234)
    assert checkpoint.state == 2 and dict(checkpoint.resources) == {"weights.bin": 1234}
    assert checkpoint.validation_metrics["val_loss"] == 0.125


def test_log_refuses_what_the_server_would_refuse(sdk, server, journals):
    trial = new_trial(sdk)
    with init(trial.id, address=server.address, journal_dir=journals) as run:
        with pytest.raises(ValueError, match="step must not be negative"):
            run.log(-1, {"x": 1.0})
        with pytest.raises(ValueError, match="metric name"):
            run.log(1, {"bad\nname": 1.0})
        with pytest.raises(ValueError, match="group"):
            run.log(1, {"x": 1.0}, group="")
        with pytest.raises(TypeError, match="'x' is str"):
            run.log(1, {"x": "high"})
        run.log(2, {"x": np.float32(0.5), "n": np.int64(3)})
    assert history(sdk, trial.id, "n").values.tolist() == [3.0]


def test_points_a_killed_training_left_behind_are_sent_by_the_agent_before_the_end(tmp_path, sdk, server, journals):
    trial = new_trial(sdk)
    script = tmp_path / "train.py"
    # Killed right after logging: the sender had no time to ship what is in the journal.
    script.write_text(
        "import os, signal\n"
        "from trialplane.client import init\n"
        "run = init()\n"
        "for step in range(3000):\n"
        "    run.log(step, {'loss': step / 2})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [tool("trialplane"), "--address", server.address, "agent", "--trial", str(trial.id),
         "--journal-dir", str(journals), "--", sys.executable, str(script)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0
    series = history(sdk, trial.id, "loss")
    assert np.array_equal(series.steps, np.arange(3000)) and np.array_equal(series.values, np.arange(3000) / 2)
    assert state_of(sdk, trial.id) == "ERROR"
