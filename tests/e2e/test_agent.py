"""`trialplane agent` against a real server, run as the installed console
script with a real child: examples/train.py, or a few lines of Python where
a test needs the child to wait for it.

Waits are on the server's own streams (WatchTrialEvents, WatchLogs) or on a
condition with a generous deadline; nothing asserts how long anything took.
Every agent a test starts is stopped at its end, children included, by PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support import ROOT, start_server, tool
from trialplane.client import Client
from trialplane.v1 import checkpoint_pb2, log_pb2, trial_pb2, worker_pb2
from trialplane.v1 import log_service_pb2 as ls
from trialplane.v1 import profiler_pb2 as pp
from trialplane.v1 import profiler_service_pb2 as ps
from trialplane.v1 import trial_service_pb2 as ts

EXAMPLE = str(ROOT / "examples" / "train.py")
PYTHON = sys.executable
S = trial_pb2
WAIT = 60.0
# A number as Python and most loggers print it, exponents included.
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


class AgentProcess:
    def __init__(self, directory: Path, index: int, argv: list[str], env: dict[str, str] | None):
        self.out_path = directory / f"agent-{index}.out"
        self.err_path = directory / f"agent-{index}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **(env or {})})

    @property
    def stdout(self) -> bytes:
        return self.out_path.read_bytes()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the agent did not exit within {timeout} s; its stderr:\n{self.stderr}")

    def cleanup(self) -> None:
        if self.proc.poll() is not None:
            return
        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


@pytest.fixture
def agents(tmp_path):
    """start(address, trial_id, *agent_args, command=[...], env={...})."""
    started: list[AgentProcess] = []

    def start(address: str, trial_id: int, *args: str, command: list[str] | None = None,
              env: dict[str, str] | None = None) -> AgentProcess:
        argv = [tool("trialplane"), "--address", address, "agent", "--trial", str(trial_id),
                "--heartbeat-interval", "0.2", *args]
        if command:
            argv += ["--", *command]
        agent = AgentProcess(tmp_path, len(started), argv, env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.cleanup()


def train(*args: str) -> list[str]:
    return [PYTHON, EXAMPLE, *args]


def wait_for_state(sdk: Client, trial_id: int, state: int) -> trial_pb2.TrialEvent:
    stream = sdk.stubs.trials.WatchTrialEvents(ts.WatchTrialEventsRequest(trial_id=trial_id), timeout=WAIT)
    with stream:
        for response in stream:
            if response.event.to_state == state:
                return response.event
    pytest.fail(f"trial {trial_id} ended without reaching {S.TrialState.Name(state)}")


def wait_for_line(sdk: Client, trial_id: int, text: str) -> None:
    stream = sdk.stubs.logs.WatchLogs(ls.WatchLogsRequest(trial_id=trial_id), timeout=WAIT)
    with stream:
        for response in stream:
            if any(text in line.message for line in response.logs):
                return
    pytest.fail(f"trial {trial_id} ended without the line {text!r}")


def wait_until(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout} s")


def events(sdk: Client, trial_id: int) -> list[tuple[str, str, int]]:
    return [(S.TrialState.Name(e.from_state).removeprefix("TRIAL_STATE_"),
             S.TrialState.Name(e.to_state).removeprefix("TRIAL_STATE_"), e.trial_run_id)
            for e in sdk.trials.events(trial_id)]


def lines(sdk: Client, trial_id: int, stream: str | None = None) -> list[str]:
    return [line.message for line in sdk.logs.list(trial_id) if stream is None or line.stream == stream]


def test_wrap_mode_completes_a_trial_and_ships_its_output_line_by_line(server, sdk, agents):
    trial = sdk.trials.create(name="wrapped")
    agent = agents(server.address, trial.id, command=train("--steps", "3"))
    assert agent.wait() == 0

    assert events(sdk, trial.id) == [("QUEUED", "STARTING", 1), ("STARTING", "RUNNING", 1), ("RUNNING", "COMPLETED", 1)]
    assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_COMPLETED
    assert lines(sdk, trial.id, "stdout") == [
        f"trial {trial.id} run 1 agent 1",
        "step 1 loss=1e-05 scale=-3.2E+4",
        "step 2 loss=1e-06 scale=-3.2E+4",
        "step 3 loss=1e-07 scale=-3.2E+4",
        "done with exit code 0",
    ]
    # The progress bar is one line, its last frame; os.write on fd 2 is caught too.
    assert lines(sdk, trial.id, "stderr") == ["progress 100%", "written to fd 2 by os.write"]
    shipped = list(sdk.logs.list(trial.id))
    assert {(line.rank, line.level) for line in shipped} == {(0, log_pb2.LOG_LEVEL_INFO)}
    # What the child wrote passes through unchanged, every frame included.
    assert agent.stdout == (f"trial {trial.id} run 1 agent 1\n".encode()
                            + b"".join(b"step %d loss=1e-%02d scale=-3.2E+4\n" % (i, i + 4) for i in (1, 2, 3))
                            + b"done with exit code 0\n")
    frames = b"".join(b"\rprogress %3d%%" % p for p in range(10, 101, 10))
    assert frames + b"\nwritten to fd 2 by os.write\n" in agent.err_path.read_bytes()


def test_the_command_gets_the_trial_in_its_environment(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="env", environment={"DATA_DIR": "/data/mnist"})
    script = ("import json, os; print(json.dumps({k: v for k, v in os.environ.items() if k == 'DATA_DIR'"
              " or k.startswith('TRIALPLANE_') and not k.startswith('TRIALPLANE_TEST_')}, sort_keys=True))")
    agent = agents(server.address, trial.id, "--token", "secret", "--journal-dir", str(tmp_path / "journal"),
                   command=[PYTHON, "-c", script])
    assert agent.wait() == 0
    (line,) = lines(sdk, trial.id)
    assert json.loads(line) == {
        "DATA_DIR": "/data/mnist",
        "TRIALPLANE_ADDRESS": server.address,
        "TRIALPLANE_AGENT": "1",
        "TRIALPLANE_JOURNAL_DIR": str(tmp_path / "journal"),
        "TRIALPLANE_TOKEN": "secret",
        "TRIALPLANE_TRIAL_ID": str(trial.id),
        "TRIALPLANE_TRIAL_RUN_ID": "1",
    }


def test_a_failing_command_ends_the_trial_in_error_with_its_exit_code_and_last_lines(server, sdk, agents):
    trial = sdk.trials.create(name="failing")
    agent = agents(server.address, trial.id, command=train("--steps", "2", "--exit-code", "3"))
    assert agent.wait() == 3

    ended = sdk.trials.get(trial.id)
    assert ended.state == S.TRIAL_STATE_ERROR
    head, *last = ended.failure_reason.splitlines()
    assert head == "exit code 3; last lines:"
    # Order is kept within each stream; stdout and stderr are two pipes, read
    # as their data comes.
    stderr = ["progress 100%", "written to fd 2 by os.write", "ERROR: failing on purpose with exit code 3"]
    stdout = [f"trial {trial.id} run 1 agent 1", "step 1 loss=1e-05 scale=-3.2E+4", "step 2 loss=1e-06 scale=-3.2E+4",
              "done with exit code 3"]
    assert [line for line in last if line in stderr] == stderr
    assert [line for line in last if line in stdout] == stdout
    final = list(sdk.trials.events(trial.id))[-1]
    assert final.to_state == S.TRIAL_STATE_ERROR and final.details["exit_code"] == 3
    (worker,) = sdk.workers.list(trial.id)
    assert worker.state == worker_pb2.WORKER_STATE_ERROR and worker.state_message == "exit code 3"
    levels = {line.message: line.level for line in sdk.logs.list(trial.id)}
    assert levels["ERROR: failing on purpose with exit code 3"] == log_pb2.LOG_LEVEL_ERROR


def test_a_missing_command_is_an_error_of_the_trial(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="missing")
    agent = agents(server.address, trial.id, command=[str(tmp_path / "no-such-program")])
    assert agent.wait() == 127
    ended = sdk.trials.get(trial.id)
    assert ended.state == S.TRIAL_STATE_ERROR
    assert ended.failure_reason.startswith(f"cannot run {tmp_path / 'no-such-program'}")


def test_nothing_runs_for_a_finished_or_unknown_trial(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="finished")
    sdk.trials.stop(trial.id)  # a queued trial is CANCELED at once
    marker = tmp_path / "ran"
    command = [PYTHON, "-c", f"open({str(marker)!r}, 'w')"]
    finished = agents(server.address, trial.id, command=command)
    unknown = agents(server.address, trial.id + 1000, command=command)
    assert (finished.wait(), unknown.wait()) == (125, 125)
    assert not marker.exists()
    assert "is CANCELED; nothing to run" in finished.stderr
    assert f"trial {trial.id + 1000} not found" in unknown.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--trial", "1"], "give the training command after --"),
    (["--trial", "1", "--follow-log", "train.log"], "needs --pid PID or --exit-marker FILE"),
    (["--trial", "1", "--follow-log", "train.log", "--pid", "1", "--", "true"], "give no command with it"),
    (["--trial", "1", "--pid", "1", "--", "true"], "go with --follow-log"),
])
def test_usage_errors_exit_2_before_anything_runs(args, message):
    done = subprocess.run([tool("trialplane"), "agent", *args], capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 2
    assert message in done.stderr


def test_the_retry_strategy_runs_the_command_again_under_the_new_run(server, sdk, agents):
    trial = sdk.trials.create(name="retried", retry_strategy={"max_attempts": 2})
    agent = agents(server.address, trial.id, command=train("--steps", "1", "--exit-code", "3", "--succeed-from-run", "2"))
    assert agent.wait() == 0

    ended = sdk.trials.get(trial.id)
    assert (ended.state, ended.trial_run_id, ended.restarts) == (S.TRIAL_STATE_COMPLETED, 2, 1)
    assert events(sdk, trial.id) == [
        ("QUEUED", "STARTING", 1), ("STARTING", "RUNNING", 1), ("RUNNING", "QUEUED", 1),
        ("QUEUED", "STARTING", 2), ("STARTING", "RUNNING", 2), ("RUNNING", "COMPLETED", 2),
    ]
    stdout = lines(sdk, trial.id, "stdout")
    assert stdout.index(f"trial {trial.id} run 1 agent 1") < stdout.index("done with exit code 3") \
        < stdout.index(f"trial {trial.id} run 2 agent 1") < stdout.index("done with exit code 0")
    workers = sorted(sdk.workers.list(trial.id), key=lambda w: w.trial_run_id)
    assert [(w.trial_run_id, w.state) for w in workers] == [
        (1, worker_pb2.WORKER_STATE_ERROR), (2, worker_pb2.WORKER_STATE_COMPLETED)]


def test_the_retries_end_in_error_when_every_attempt_fails(server, sdk, agents):
    trial = sdk.trials.create(name="hopeless", retry_strategy={"max_attempts": 2})
    agent = agents(server.address, trial.id, command=train("--steps", "1", "--exit-code", "5"))
    assert agent.wait() == 5
    ended = sdk.trials.get(trial.id)
    assert (ended.state, ended.trial_run_id) == (S.TRIAL_STATE_ERROR, 2)


def test_stop_trial_sends_sigterm_and_the_trial_ends_canceled(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="stopped")
    agent = agents(server.address, trial.id, command=train("--steps", "1", "--wait-for", str(tmp_path / "never")))
    wait_for_line(sdk, trial.id, "waiting for")
    sdk.trials.stop(trial.id, grace_period=60)
    assert agent.wait() == 0  # the child exits 0 on SIGTERM

    assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_CANCELED
    assert events(sdk, trial.id)[-2:] == [("RUNNING", "STOPPING_CANCELED", 1), ("STOPPING_CANCELED", "CANCELED", 1)]
    assert lines(sdk, trial.id, "stdout")[-1] == "SIGTERM received; exiting"
    (worker,) = sdk.workers.list(trial.id)
    assert worker.state == worker_pb2.WORKER_STATE_KILLED


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="stubborn")
    agent = agents(server.address, trial.id,
                   command=train("--steps", "1", "--ignore-sigterm", "--wait-for", str(tmp_path / "never")))
    wait_for_line(sdk, trial.id, "waiting for")
    sdk.trials.stop(trial.id, grace_period=0.5)
    assert agent.wait() == 128 + signal.SIGKILL

    assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_CANCELED
    assert "SIGTERM received; ignoring it" in lines(sdk, trial.id)
    assert list(sdk.trials.events(trial.id))[-1].details["signal"] == "SIGKILL"


def test_kill_trial_kills_the_child_at_once(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="killed")
    agent = agents(server.address, trial.id,
                   command=train("--steps", "1", "--ignore-sigterm", "--wait-for", str(tmp_path / "never")))
    wait_for_line(sdk, trial.id, "waiting for")
    sdk.trials.kill(trial.id)
    assert agent.wait() == 128 + signal.SIGKILL
    assert events(sdk, trial.id)[-2:] == [("RUNNING", "STOPPING_KILLED", 1), ("STOPPING_KILLED", "CANCELED", 1)]
    assert "SIGTERM received; ignoring it" not in lines(sdk, trial.id)


def test_restart_trial_stops_the_run_and_runs_the_command_under_the_new_one(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="restarted")
    go = tmp_path / "go"
    agent = agents(server.address, trial.id, command=train("--steps", "1", "--wait-for", str(go)))
    wait_for_line(sdk, trial.id, "waiting for")
    sdk.trials.restart(trial.id)
    wait_until(lambda: [w for w in sdk.workers.list(trial.id) if w.state == worker_pb2.WORKER_STATE_KILLED],
               "the first run's worker ending")
    go.touch()
    assert agent.wait() == 0

    ended = sdk.trials.get(trial.id)
    assert (ended.state, ended.trial_run_id) == (S.TRIAL_STATE_COMPLETED, 2)
    stdout = lines(sdk, trial.id, "stdout")
    assert stdout.index("SIGTERM received; exiting") < stdout.index(f"trial {trial.id} run 2 agent 1")
    assert events(sdk, trial.id)[-3:] == [("QUEUED", "STARTING", 2), ("STARTING", "RUNNING", 2),
                                          ("RUNNING", "COMPLETED", 2)]


def test_a_paused_trial_stops_its_command_and_runs_it_again_when_activated(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="paused")
    go = tmp_path / "go"
    agent = agents(server.address, trial.id, command=train("--steps", "1", "--wait-for", str(go)))
    wait_for_line(sdk, trial.id, "waiting for")
    sdk.trials.pause(trial.id)
    wait_until(lambda: [w for w in sdk.workers.list(trial.id) if w.state == worker_pb2.WORKER_STATE_KILLED],
               "the paused run's worker ending")
    assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_PAUSED
    assert agent.proc.poll() is None
    go.touch()
    sdk.trials.activate(trial.id)
    assert agent.wait() == 0

    ended = sdk.trials.get(trial.id)
    assert (ended.state, ended.trial_run_id) == (S.TRIAL_STATE_COMPLETED, 1)
    assert lines(sdk, trial.id, "stdout").count(f"trial {trial.id} run 1 agent 1") == 2
    assert "SIGTERM received; exiting" in lines(sdk, trial.id, "stdout")


def test_the_agent_passes_its_own_sigterm_on_and_reports_the_run_interrupted(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="interrupted")
    agent = agents(server.address, trial.id, command=train("--steps", "1", "--wait-for", str(tmp_path / "never")))
    wait_for_line(sdk, trial.id, "waiting for")
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.wait() == 0

    ended = sdk.trials.get(trial.id)
    assert ended.state == S.TRIAL_STATE_ERROR
    assert ended.failure_reason.startswith("exit code 0 (the agent was interrupted)")
    assert lines(sdk, trial.id, "stdout")[-1] == "SIGTERM received; exiting"


def test_the_worker_is_registered_with_its_rank_and_sends_heartbeats(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="ranked")
    go = tmp_path / "go"
    agent = agents(server.address, trial.id, command=train("--steps", "1", "--wait-for", str(go)),
                   env={"RANK": "3", "LOCAL_RANK": "1"})
    wait_for_line(sdk, trial.id, "waiting for")
    running = wait_until(lambda: [w for w in sdk.workers.list(trial.id) if w.state == worker_pb2.WORKER_STATE_RUNNING],
                         "the worker reporting RUNNING")[0]
    assert (running.rank, running.type, running.trial_run_id) == (3, "worker", 1)
    seen = running.last_heartbeat_time.ToMicroseconds()
    wait_until(lambda: sdk.workers.get(running.id).last_heartbeat_time.ToMicroseconds() > seen, "a heartbeat")
    go.touch()
    assert agent.wait() == 0

    worker = sdk.workers.get(running.id)
    assert worker.state == worker_pb2.WORKER_STATE_COMPLETED
    assert {line.rank for line in sdk.logs.list(trial.id)} == {3}


def test_a_metric_definition_turns_lines_with_exponents_into_points(server, sdk, agents):
    definitions = [
        {"name": "loss", "regex": rf"step (?P<step>\d+) loss=(?P<value>{NUMBER})"},
        {"name": "scale", "regex": rf"scale=({NUMBER})"},
    ]
    trial = sdk.trials.create(name="parsed", metric_definitions=definitions)
    agent = agents(server.address, trial.id, command=train("--steps", "3"))
    assert agent.wait() == 0

    loss = sdk.metrics.history(trial.id, "loss", group="logs")
    assert list(loss.steps) == [1, 2, 3]
    assert list(loss.values) == [1e-05, 1e-06, 1e-07]
    scale = sdk.metrics.history(trial.id, "scale", group="logs")
    assert len(scale.values) == 3 and set(scale.values) == {-3.2e4}


def test_sidecar_follows_a_rotated_and_truncated_log_until_the_exit_marker(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="sidecar")
    log_file, marker = tmp_path / "train.log", tmp_path / "exit-code"
    agent = agents(server.address, trial.id, "--follow-log", str(log_file), "--exit-marker", str(marker))
    wait_for_state(sdk, trial.id, S.TRIAL_STATE_RUNNING)

    # The file appears after the agent started following it.
    with open(log_file, "w") as f:
        f.write("first file: a long line that ends at a large offset\nprogress 1\rprogress 2\n")
    wait_for_line(sdk, trial.id, "progress 2")
    log_file.rename(tmp_path / "train.log.1")
    log_file.write_text("second file\n")
    wait_for_line(sdk, trial.id, "second file")
    with open(log_file, "w") as f:  # truncated in place, as copytruncate does
        f.write("third\n")
    wait_for_line(sdk, trial.id, "third")
    with open(log_file, "a") as f:
        f.write("ERROR: the last words\n")
    marker.write_text("4\n")
    assert agent.wait() == 4

    assert lines(sdk, trial.id) == [
        "first file: a long line that ends at a large offset", "progress 2", "second file", "third",
        "ERROR: the last words",
    ]
    ended = sdk.trials.get(trial.id)
    assert ended.state == S.TRIAL_STATE_ERROR
    assert ended.failure_reason.startswith("exit code 4; last lines:")
    assert ended.failure_reason.endswith("ERROR: the last words")
    (worker,) = sdk.workers.list(trial.id)
    assert (worker.type, worker.state) == ("sidecar", worker_pb2.WORKER_STATE_ERROR)


def test_sidecar_reports_the_end_when_the_training_process_exits(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="sidecar-pid")
    log_file, go = tmp_path / "train.log", tmp_path / "go"
    with open(log_file, "wb") as out:
        training = subprocess.Popen(train("--steps", "2", "--wait-for", str(go)), stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        agent = agents(server.address, trial.id, "--follow-log", str(log_file), "--pid", str(training.pid))
        wait_for_line(sdk, trial.id, "waiting for")
        go.touch()
        assert agent.wait() == 0
    finally:
        training.kill()
        training.wait()
    assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_COMPLETED
    assert "step 2 loss=1e-06 scale=-3.2E+4" in lines(sdk, trial.id)
    assert lines(sdk, trial.id)[-1] == "done with exit code 0"


WAITING_CHILD = """
import sys, time
from pathlib import Path
print("before the outage", flush=True)
while not Path(sys.argv[1]).exists():
    time.sleep(0.05)
for i in range(1, 6):
    print(f"during the outage {i}", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.05)
print("after the outage", flush=True)
sys.exit(int(sys.argv[3]))
"""


class Restartable:
    """A server that can be stopped and started again on the same port and database."""

    def __init__(self, db_path):
        self.db_path = db_path
        self.server = start_server(db_path)
        self.port = self.server.app.port
        self.address = self.server.address
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.server.stop()
            self.running = False

    def start(self) -> None:
        self.server = start_server(self.db_path, port=self.port)
        self.running = True


@pytest.fixture
def restartable(db_path):
    server = Restartable(db_path)
    yield server
    server.stop()


def test_the_child_runs_through_a_server_outage_and_the_queued_lines_arrive_once(restartable, agents, tmp_path):
    with Client(restartable.address) as sdk:
        trial = sdk.trials.create(name="outage")
        first, second = tmp_path / "first", tmp_path / "second"
        agent = agents(restartable.address, trial.id, "--final-timeout", "60",
                       command=[PYTHON, "-c", WAITING_CHILD, str(first), str(second), "0"])
        wait_for_line(sdk, trial.id, "before the outage")
    restartable.stop()
    first.touch()
    # The child is not held up: its lines pass through while nothing can be shipped.
    wait_until(lambda: b"during the outage 5\n" in agent.stdout, "the child's output during the outage")
    restartable.start()
    second.touch()
    assert agent.wait() == 0
    with Client(restartable.address) as sdk:
        assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_COMPLETED
        assert lines(sdk, trial.id) == ["before the outage", *[f"during the outage {i}" for i in range(1, 6)],
                                        "after the outage"]


def test_with_the_server_gone_the_agent_exits_with_the_childs_code(restartable, agents, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    second.touch()
    with Client(restartable.address) as sdk:
        trial = sdk.trials.create(name="abandoned")
        agent = agents(restartable.address, trial.id, "--final-timeout", "2",
                       command=[PYTHON, "-c", WAITING_CHILD, str(first), str(second), "3"])
        wait_for_line(sdk, trial.id, "before the outage")
    restartable.stop()
    first.touch()
    assert agent.wait() == 3
    assert b"after the outage\n" in agent.stdout
    assert "the final state ERROR of trial" in agent.stderr and "did not reach" in agent.stderr
    assert "not delivered" in agent.stderr and "log lines" in agent.stderr


# Burns CPU for about two seconds with a few MiB resident, then exits 0.
BURNING_CHILD = """
import time
block = bytearray(16 * 1024 * 1024)
end = time.monotonic() + 2.5
while time.monotonic() < end:
    sum(range(10_000))
print("burnt", len(block))
"""


def test_the_agent_reports_the_childs_cpu_and_memory_as_system_profiler_series(server, sdk, agents):
    trial = sdk.trials.create(name="system")
    # The default: a reading a second.
    agent = agents(server.address, trial.id, command=[PYTHON, "-c", BURNING_CHILD])
    assert agent.wait() == 0, agent.stderr

    listed = sdk.stubs.profiler.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial.id)).series
    by_name = {s.labels.name: s for s in listed}
    assert {"cpu_util", "memory_rss_bytes"} <= set(by_name), [s.labels for s in listed]
    for series in by_name.values():
        assert series.labels.metric_type == pp.PROFILER_METRIC_TYPE_SYSTEM
        assert series.labels.agent_id.endswith("/0")
    samples = sdk.stubs.profiler.GetProfilerSamples(ps.GetProfilerSamplesRequest(
        series=[by_name["cpu_util"].labels, by_name["memory_rss_bytes"].labels])).series
    cpu, rss = (list(s.samples.values) for s in samples)
    assert cpu and max(cpu) > 10
    assert rss and min(rss) > 16 * 1024 * 1024
    assert list(samples[0].samples.batches) == list(range(len(cpu)))


def test_system_metrics_interval_0_sends_no_profiler_series(server, sdk, agents):
    trial = sdk.trials.create(name="no system")
    agent = agents(server.address, trial.id, "--system-metrics-interval", "0",
                   command=[PYTHON, "-c", "import time; time.sleep(1.5)"])
    assert agent.wait() == 0, agent.stderr
    assert not sdk.stubs.profiler.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial.id)).series


# --- on a server that asks for tokens ------------------------------------------

SECURED_CHILD = """
import os
from trialplane.client import Client
from trialplane.v1 import token_service_pb2 as tk
from trialplane.v1 import trial_service_pb2 as ts
token = os.environ["TRIALPLANE_TOKEN"]
print("my token is", token)
print("the agent's is", os.environ.get("AGENT_API_TOKEN", "unset"))
with Client() as client:
    print("I am", client.stubs.tokens.WhoAmI(tk.WhoAmIRequest()).principal)
    try:
        client.stubs.trials.ListTrials(ts.ListTrialsRequest())
    except Exception as err:
        print("listing:", type(err).__name__)
"""


@pytest.fixture
def secured(db_path):
    """A server that asks for tokens."""
    srv = start_server(db_path, auth=True)
    yield srv
    srv.stop()


def test_the_command_reports_with_a_trial_run_token_and_secrets_are_redacted(secured, db_path, agents):
    admin_secret = db_path.with_suffix(".admin-token").read_text().strip()
    admin = Client(secured.address, token=admin_secret)
    trial = admin.trials.create(name="secured")
    agent = agents(secured.address, trial.id, "--token", admin_secret, command=[PYTHON, "-c", SECURED_CHILD],
                   env={"AGENT_API_TOKEN": "hunter2-but-longer"})
    assert agent.wait() == 0, agent.stderr
    assert admin.trials.get(trial.id).state == trial_pb2.TRIAL_STATE_COMPLETED
    shipped = lines(admin, trial.id)
    assert shipped == [
        "my token is [redacted]",
        "the agent's is [redacted]",
        f"I am trial-run token 2 (trial {trial.id} run 1)",
        "listing: PermissionDenied",
    ]
    # The child's own output passes through as it wrote it; only what is shipped is redacted.
    assert b"my token is tp_" in agent.stdout
    assert admin_secret not in agent.stdout.decode() + agent.stderr
    admin.close()


# Sends 8 MiB to itself over loopback TCP and writes 8 MiB to a file with
# fsync, then keeps busy long enough for the agent's readings to cover that.
IO_CHILD = """
import os, socket, sys, threading, time
server = socket.create_server(("127.0.0.1", 0))
def drain():
    conn, _ = server.accept()
    while conn.recv(1 << 20):
        pass
threading.Thread(target=drain, daemon=True).start()
with socket.create_connection(server.getsockname()) as client:
    client.sendall(b"x" * (8 << 20))
with open(sys.argv[1], "wb") as f:
    f.write(os.urandom(8 << 20))
    f.flush()
    os.fsync(f.fileno())
end = time.monotonic() + 2.5
while time.monotonic() < end:
    sum(range(10_000))
"""
IO_SERIES = ["disk_read_bytes_per_second", "disk_write_bytes_per_second", "net_sent_bytes_per_second",
             "net_recv_bytes_per_second"]


def test_the_agent_reports_the_hosts_disk_and_network_throughput(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="io")
    agent = agents(server.address, trial.id, command=[PYTHON, "-c", IO_CHILD, str(tmp_path / "written")])
    assert agent.wait() == 0, agent.stderr

    listed = sdk.stubs.profiler.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial.id)).series
    by_name = {s.labels.name: s for s in listed}
    # A host whose disks psutil cannot count (some containers) reports the network only.
    expected = IO_SERIES if psutil.disk_io_counters() is not None else IO_SERIES[2:]
    assert set(expected) <= set(by_name), sorted(by_name)
    series = [by_name[name].labels for name in ["cpu_util", *expected]]
    samples = {s.labels.name: s.samples for s in sdk.stubs.profiler.GetProfilerSamples(
        ps.GetProfilerSamplesRequest(series=series)).series}
    for name in expected:
        assert by_name[name].labels.metric_type == pp.PROFILER_METRIC_TYPE_SYSTEM and by_name[name].labels.gpu_uuid == ""
        # A reading per interval, the same batches as cpu_util's, each a rate >= 0.
        assert list(samples[name].batches) == list(samples["cpu_util"].batches)
        assert all(v >= 0 for v in samples[name].values)

    # The child's 8 MiB went out and came back in over loopback. Readings are
    # a second apart (the default interval), so the rates add up to about the
    # bytes moved; half of them is room for a slower reading.
    assert sum(samples["net_sent_bytes_per_second"].values) >= 4 * 2**20, list(samples["net_sent_bytes_per_second"].values)
    assert sum(samples["net_recv_bytes_per_second"].values) >= 4 * 2**20


# --- examples/regression.py: a numpy training through the SDK -------------------

REGRESSION = str(ROOT / "examples" / "regression.py")


def test_the_numpy_example_reports_metrics_logs_system_series_a_checkpoint_and_completes(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="regression", hyperparameters={"lr": 0.05, "batch_size": 64})
    agent = agents(server.address, trial.id, command=[
        PYTHON, REGRESSION, "--steps", "60", "--eval-every", "20", "--step-seconds", "0.03",
        "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert agent.wait() == 0, agent.stderr
    assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_COMPLETED
    loss = sdk.metrics.history_arrays(trial.id, "loss")
    assert list(loss.steps) == list(range(1, 61)) and loss.values[-10:].mean() < loss.values[:10].mean() / 5
    val = sdk.metrics.history_arrays(trial.id, "val_loss", group="validation")
    assert list(val.steps) == [20, 40, 60] and val.values[-1] < 0.1
    stdout = lines(sdk, trial.id, "stdout")
    assert stdout[0].startswith("step 1 loss=") and "step 60 loss=" in stdout[59]
    assert stdout[-1] == "done at step 60; 63 points sent"
    (checkpoint,) = sdk.checkpoints.list(trial.id)
    saved = tmp_path / "ckpt" / f"trial-{trial.id}-run-1" / "step-60.npz"
    assert (checkpoint.state, checkpoint.steps_completed) == (checkpoint_pb2.CHECKPOINT_STATE_COMPLETED, 60)
    assert dict(checkpoint.resources) == {"step-60.npz": saved.stat().st_size}
    assert checkpoint.storage_uri == saved.parent.as_uri()
    listed = sdk.stubs.profiler.ListProfilerSeries(ps.ListProfilerSeriesRequest(trial_id=trial.id)).series
    assert {"cpu_util", "memory_rss_bytes"} <= {s.labels.name for s in listed}


def test_the_numpy_example_saves_where_it_is_when_the_trial_is_stopped(server, sdk, agents, tmp_path):
    trial = sdk.trials.create(name="stopped regression")
    agent = agents(server.address, trial.id, command=[
        PYTHON, REGRESSION, "--steps", "100000", "--step-seconds", "0.01", "--checkpoint-dir", str(tmp_path)])
    wait_for_line(sdk, trial.id, "step 20 loss=")
    sdk.trials.stop(trial.id, grace_period=60)
    assert agent.wait() == 0, agent.stderr
    assert sdk.trials.get(trial.id).state == S.TRIAL_STATE_CANCELED
    (stopped,) = [line for line in lines(sdk, trial.id, "stdout") if line.startswith("asked to stop")]
    step = int(stopped.split()[5].rstrip(";"))
    (checkpoint,) = sdk.checkpoints.list(trial.id)
    assert checkpoint.steps_completed == step >= 20
    assert (tmp_path / f"trial-{trial.id}-run-1" / f"step-{step}.npz").exists()
    assert list(sdk.metrics.history_arrays(trial.id, "loss").steps) == list(range(1, step + 1))
