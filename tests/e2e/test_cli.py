"""The `trialplane` command against a real server: tables, JSON Lines that
parse back into the API's messages, one-line errors and exit statuses.

Most commands run in this process through main() (the same code the console
script runs); what depends on the process itself (the installed script,
tracebacks, exit codes) runs as a subprocess."""

import json
import socket
import subprocess

import pytest
from google.protobuf import json_format, struct_pb2
from support import tool
from support.proxy import Proxy
from trialplane.client.cli import main
from trialplane.v1 import (
    checkpoint_pb2,
    log_pb2,
    metrics_pb2,
    trial_pb2,
    worker_pb2,
)
from trialplane.v1 import checkpoint_service_pb2 as cs
from trialplane.v1 import log_service_pb2 as ls
from trialplane.v1 import metrics_service_pb2 as ms
from trialplane.v1 import trial_service_pb2 as ts
from trialplane.v1 import worker_service_pb2 as ws

STUDY_YAML = """\
name: cli-study
objective: {metric_name: val_loss, type: OBJECTIVE_TYPE_MINIMIZE}
parameters:
  - name: lr
    type: PARAMETER_TYPE_DOUBLE
    scale: PARAMETER_SCALE_LOG
    feasible_space: {min: 1e-4, max: 0.1}
  - name: optimizer
    type: PARAMETER_TYPE_CATEGORICAL
    feasible_space: {categories: [sgd, adam]}
"""


@pytest.fixture
def cli(server, capsys):
    """Runs the command against the test server: (exit status, stdout lines, stderr lines)."""

    def run(*argv):
        status = main(["--address", server.address, *argv])
        captured = capsys.readouterr()
        return status, captured.out.splitlines(), captured.err.splitlines()

    return run


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(STUDY_YAML)
    return path


def report_state(sdk, trial_id, state):
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial_id, state=state))


def report(sdk, trial_id, step, group="training", **values):
    avg = struct_pb2.Struct()
    avg.update(values)
    metrics = metrics_pb2.TrialMetrics(trial_id=trial_id, steps_completed=step, metrics=metrics_pb2.Metrics(avg_metrics=avg))
    sdk.stubs.metrics.ReportMetrics(ms.ReportMetricsRequest(metrics=metrics, group=group))


def test_help_lists_the_commands_and_serve_help_is_unchanged():
    top = subprocess.run([tool("trialplane"), "--help"], capture_output=True, text=True, check=True).stdout
    for command in ["serve", "studies", "trials", "metrics", "logs", "checkpoints", "workers"]:
        assert f"    {command} " in top
    serve = subprocess.run([tool("trialplane"), "serve", "--help"], capture_output=True, text=True, check=True)
    assert serve.stdout.startswith("usage: trialplane serve [-h] [--host HOST] [--port PORT] [--db DB_PATH]")
    assert "--watchdog-interval" in serve.stdout and serve.stderr == ""


def test_studies_create_list_show_and_delete(cli, sdk, study_file):
    status, out, err = cli("studies", "create", "-f", str(study_file))
    assert (status, err) == (0, [])
    assert out[0].split() == ["ID", "NAME", "STATE", "TRIALS", "OBJECTIVE", "CREATED"]
    study = sdk.studies.get("cli-study")
    assert out[1].split()[:6] == [str(study.id), "cli-study", "ACTIVE", "0", "min", "val_loss"]

    status, out, _ = cli("studies", "show", "cli-study")
    assert status == 0
    assert "objective  min val_loss" in out
    assert ["lr", "DOUBLE", "0.0001", "..", "0.1", "log"] in [line.split() for line in out]
    assert ["optimizer", "CATEGORICAL", "sgd,", "adam"] in [line.split() for line in out]

    status, out, _ = cli("-o", "json", "studies", "list")
    assert status == 0 and len(out) == 1
    assert json_format.Parse(out[0], type(study)()) == study

    status, out, _ = cli("studies", "delete", str(study.id))
    assert status == 0 and out[1].split()[1] == "cli-study"
    assert list(sdk.studies.list()) == []


def test_trials_list_fits_80_columns_and_shows_state_steps_and_best(cli, sdk, study_file):
    study = sdk.studies.create(study_file)
    names = ["a-rather-long-trial-name-that-would-push-the-table-past-eighty-columns", "short"]
    trials = [sdk.trials.create(study.id, name, {"lr": 0.01, "optimizer": "adam"}) for name in names]
    report_state(sdk, trials[0].id, trial_pb2.TRIAL_STATE_RUNNING)
    report(sdk, trials[0].id, 10, group="validation", val_loss=0.125)
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(
        id=trials[0].id, state=trial_pb2.TRIAL_STATE_RUNNING, steps_completed=40))

    status, out, _ = cli("trials", "list", "--study", "cli-study")
    assert status == 0 and len(out) == 3
    assert all(len(line) <= 80 for line in out), out
    header, first, second = (line.split() for line in out)
    assert header == ["ID", "STUDY", "NAME", "STATE", "STEPS", "BEST", "DURATION"]
    assert first[0:2] == [str(trials[0].id), str(study.id)] and first[2].endswith("…")
    assert first[3:6] == ["RUNNING", "40", "0.125"]
    assert second[2:6] == ["short", "QUEUED", "0"] and len(second) == 5

    status, out, _ = cli("trials", "list", "--state", "queued", "--state", "paused")
    assert [line.split()[2] for line in out[1:]] == ["short"]
    status, out, err = cli("trials", "list", "--state", "runing")
    assert status == 2 and out == [] and len(err) == 1 and err[0].startswith("trialplane: unknown trial state 'runing'")


def test_json_output_is_one_message_per_line_that_parses_back(cli, sdk):
    made = [sdk.trials.create(name=f"j{i}", tags=["cli"]) for i in range(3)]
    status, out, _ = cli("trials", "list", "-o", "json")
    assert status == 0 and len(out) == 3
    parsed = [json_format.Parse(line, trial_pb2.Trial()) for line in out]
    assert parsed == [sdk.trials.get(t.id) for t in made]
    # int64 ids are strings in the proto3 JSON mapping, as grpcurl prints them.
    assert json.loads(out[0])["id"] == str(made[0].id)

    status, out, _ = cli("-o", "json", "trials", "show", str(made[1].id))
    assert status == 0 and len(out) == 1 and json.loads(out[0])["name"] == "j1"


def test_transitions_print_the_trial_and_events_its_history(cli, sdk):
    trial = sdk.trials.create(name="steer")
    assert cli("trials", "pause", str(trial.id))[1][1].split()[3] == "PAUSED"
    assert cli("trials", "activate", str(trial.id))[1][1].split()[3] == "QUEUED"
    status, out, _ = cli("-o", "json", "trials", "restart", str(trial.id), "--message", "new data")
    assert status == 0 and json.loads(out[0])["trialRunId"] == "2"
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    status, out, _ = cli("-o", "json", "trials", "stop", str(trial.id), "--grace", "30")
    stopped = json_format.Parse(out[0], trial_pb2.Trial())
    assert stopped.state == trial_pb2.TRIAL_STATE_STOPPING_CANCELED
    assert stopped.stop_deadline.ToSeconds() - stopped.update_time.ToSeconds() in (29, 30)
    assert cli("trials", "kill", str(trial.id))[1][1].split()[3] == "STOPPING_KILLED"

    status, out, _ = cli("trials", "events", str(trial.id))
    assert status == 0
    assert out[0].split() == ["SEQ", "TIME", "FROM", "TO", "RUN", "MESSAGE"]
    rows = [line.split() for line in out[1:]]
    assert [r[0] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [(r[3], r[4]) for r in rows] == [("QUEUED", "PAUSED"), ("PAUSED", "QUEUED"), ("QUEUED", "QUEUED"),
                                              ("QUEUED", "RUNNING"), ("RUNNING", "STOPPING_CANCELED"),
                                              ("STOPPING_CANCELED", "STOPPING_KILLED")]
    assert rows[2][5:] == ["1", "new", "data"]  # run 1 ended with the restart

    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_CANCELED)
    # The trial is terminal, so the follow prints its whole history and ends.
    status, out, _ = cli("-o", "json", "trials", "events", str(trial.id), "--follow")
    assert status == 0 and [json.loads(line)["sequence"] for line in out] == [str(i) for i in range(1, 8)]


def test_metrics_summaries_and_history(cli, sdk):
    trial = sdk.trials.create(name="m")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    for step in range(1, 6):
        report(sdk, trial.id, step, loss=1 / step, **({"acc": step / 10} if step % 2 else {}))
    report(sdk, trial.id, 5, group="validation", loss=0.3)

    status, out, _ = cli("metrics", str(trial.id))
    assert status == 0
    assert [line.split()[:3] for line in out] == [["GROUP", "NAME", "COUNT"], ["training", "acc", "3"],
                                                  ["training", "loss", "5"], ["validation", "loss", "1"]]

    status, out, _ = cli("metrics", str(trial.id), "--name", "loss", "--name", "acc", "--group", "training")
    assert status == 0
    assert [line.split() for line in out] == [
        ["STEP", "loss", "acc"], ["1", "1", "0.1"], ["2", "0.5"], ["3", "0.333333", "0.3"], ["4", "0.25"], ["5", "0.2", "0.5"]]

    status, out, _ = cli("-o", "json", "metrics", str(trial.id), "--name", "acc")
    (series,) = [json_format.Parse(line, ms.MetricSeries()) for line in out]
    assert (series.group, list(series.steps), list(series.values)) == ("training", [1, 3, 5], [0.1, 0.3, 0.5])

    status, out, _ = cli("metrics", str(trial.id), "--group", "validation")
    assert [line.split() for line in out] == [["STEP", "loss"], ["5", "0.3"]]

    status, out, err = cli("metrics", str(trial.id), "--name", "loss")
    assert status == 2 and err == ["trialplane: loss is in the groups training, validation; pick one with --group"]


def test_logs_tail_and_follow_to_the_end(cli, sdk):
    trial = sdk.trials.create(name="l")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    lines = [log_pb2.TaskLog(trial_id=trial.id, message=f"epoch {i}", worker="w0" if i == 2 else "") for i in range(4)]
    sdk.stubs.logs.AddLogs(ls.AddLogsRequest(logs=lines))

    status, out, _ = cli("logs", str(trial.id))
    assert status == 0 and [line.split(maxsplit=3)[2:] for line in out] == [
        ["INFO", "epoch 0"], ["INFO", "epoch 1"], ["INFO", "[w0] epoch 2"], ["INFO", "epoch 3"]]
    assert [line.split(maxsplit=3)[3] for line in cli("logs", str(trial.id), "--tail", "2")[1]] == ["[w0] epoch 2", "epoch 3"]

    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_COMPLETED)
    status, out, _ = cli("-o", "json", "logs", str(trial.id), "--follow", "--tail", "1")
    assert status == 0 and [json.loads(line)["message"] for line in out] == ["epoch 3"]
    status, out, _ = cli("logs", str(trial.id), "--follow")
    assert status == 0 and [line.split(maxsplit=3)[3] for line in out] == ["epoch 0", "epoch 1", "[w0] epoch 2", "epoch 3"]


def test_checkpoints_and_workers_tables(cli, sdk):
    trial = sdk.trials.create(name="c")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    sdk.stubs.checkpoints.ReportCheckpoint(cs.ReportCheckpointRequest(checkpoint=checkpoint_pb2.Checkpoint(
        uuid="ck-1", trial_id=trial.id, state=checkpoint_pb2.CHECKPOINT_STATE_COMPLETED, steps_completed=100,
        resources={"model.pt": 3 * 1024 * 1024})))
    sdk.stubs.workers.RegisterWorker(ws.RegisterWorkerRequest(worker=worker_pb2.Worker(
        trial_id=trial.id, type="chief", rank=0, address="10.0.0.7:29500")))

    status, out, _ = cli("checkpoints", str(trial.id))
    assert status == 0 and [line.split()[:5] for line in out] == [
        ["UUID", "STATE", "STEPS", "SIZE", "CREATED"], ["ck-1", "COMPLETED", "100", "3.0", "MiB"]]
    status, out, _ = cli("workers", str(trial.id))
    assert status == 0 and out[1].split()[1:6] == ["0", "chief", "PENDING", "1", "10.0.0.7:29500"]
    status, out, err = cli("workers", "999")
    assert (status, out, err) == (1, [], ["trialplane: NOT_FOUND (RESOURCE_NOT_FOUND): trial 999 not found"])


def test_errors_are_one_line_with_their_exit_status(cli, tmp_path, capsys):
    status, out, err = cli("trials", "show", "999")
    assert (status, out, err) == (1, [], ["trialplane: NOT_FOUND (RESOURCE_NOT_FOUND): trial 999 not found"])

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: 'no spaces allowed'\nobjective: {metric_name: loss}\n")
    status, out, err = cli("studies", "create", "-f", str(bad))
    assert status == 1 and out == [] and len(err) == 1
    assert err[0].startswith("trialplane: INVALID_ARGUMENT (INVALID_FIELD): ")
    assert "study.name: " in err[0] and "study.objective.type: " in err[0]

    status, _, err = cli("studies", "create", "-f", str(tmp_path / "missing.yaml"))
    assert status == 2 and err == [f"trialplane: {tmp_path / 'missing.yaml'}: No such file or directory"]
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"name": "x", "color": "red"}')
    status, _, err = cli("studies", "create", "-f", str(unknown))
    assert status == 2 and len(err) == 1 and 'no field named "color"' in err[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    status, _, err = cli("studies", "create", "-f", str(broken))
    assert status == 2 and len(err) == 1 and "not valid YAML" in err[0]

    with pytest.raises(SystemExit) as usage:
        main(["trials", "show", "seven"])
    assert usage.value.code == 2
    assert "invalid int value: 'seven'" in capsys.readouterr().err


def test_the_token_option_and_variable_reach_the_server(server, capsys, monkeypatch):
    proxy = Proxy(server.address)
    try:
        assert main(["--address", proxy.address, "--token", "opt", "trials", "list"]) == 0
        monkeypatch.setenv("TRIALPLANE_TOKEN", "env")
        monkeypatch.setenv("TRIALPLANE_ADDRESS", proxy.address)
        assert main(["trials", "list", "-o", "json"]) == 0
        assert [a.metadata.get("authorization") for a in proxy.attempts] == ["Bearer opt", "Bearer env"]
    finally:
        proxy.stop()


def test_an_unreachable_server_is_one_line_and_exit_1():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    result = subprocess.run([tool("trialplane"), "--address", address, "studies", "list"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"trialplane: cannot reach the server at {address}: ")


def test_the_installed_command_prints_json_lines(server, sdk):
    made = sdk.trials.create(name="via-script")
    result = subprocess.run([tool("trialplane"), "trials", "show", str(made.id), "--address", server.address, "-o", "json"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == ""
    assert json_format.Parse(result.stdout, trial_pb2.Trial()) == sdk.trials.get(made.id)


def test_metrics_plot_draws_the_curves_with_axes_and_a_legend(cli, sdk):
    trial = sdk.trials.create(name="plotted")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    for step in range(0, 101):
        report(sdk, trial.id, step, loss=2.0 - step / 50, acc=step / 100)
    status, out, _ = cli("metrics", str(trial.id), "--name", "loss", "--name", "acc", "--group", "training", "--plot")
    assert status == 0
    chart = [line for line in out if "|" in line]
    assert len(chart) == 16
    # The value axis runs from the largest value at the top to the smallest at the bottom.
    assert chart[0].split("|")[0].strip() == "2" and chart[-1].split("|")[0].strip() == "0"
    # loss falls from the top left; acc rises from the bottom left to the right.
    assert chart[0].split("|")[1].startswith("*") and chart[-1].split("|")[1].rstrip().endswith("*")
    assert chart[-1].split("|")[1].startswith("+") or "+" in chart[-2].split("|")[1][:2]
    assert out[-3].strip().startswith("+-")
    assert out[-2].split() == ["0", "100", "step"] and out[-1].split() == ["*", "loss", "+", "acc"]


def test_tokens_create_list_whoami_and_revoke_on_a_server_that_asks_for_them(db_path, capsys, monkeypatch):
    from support import start_server

    srv = start_server(db_path, auth=True)
    monkeypatch.setenv("TRIALPLANE_TOKEN_FILE", str(db_path.with_suffix(".admin-token")))

    def run(*argv):
        status = main(["--address", srv.address, *argv])
        captured = capsys.readouterr()
        return status, captured.out.splitlines(), captured.err.splitlines()

    try:
        assert run("tokens", "whoami") == (0, ["user token 1 (admin): scopes admin, studies all"], [])
        status, out, err = run("tokens", "create", "ci-bot", "--scope", "write", "--expires-in", "30d", "--service")
        (secret,) = out
        assert (status, err) == (0, []) and secret.startswith("tp_")
        status, out, _ = run("tokens", "list")
        assert status == 0 and out[0].split()[:4] == ["ID", "NAME", "KIND", "SCOPES"]
        rows = [line.split() for line in out[1:]]
        assert [r[:5] for r in rows] == [["2", "ci-bot", "SERVICE", "write", "all"], ["1", "admin", "USER", "admin", "all"]]
        status, out, _ = run("-o", "json", "tokens", "list")
        assert [json.loads(line)["name"] for line in out] == ["ci-bot", "admin"] and secret not in "".join(out)
        assert run("--token", secret, "tokens", "whoami")[1] == ["service token 2 (ci-bot): scopes write, studies all"]
        status, _, err = run("--token", secret, "tokens", "list")
        assert status == 1 and err == ["trialplane: PERMISSION_DENIED (PERMISSION_DENIED): service token 2 (ci-bot) "
                                       "may not call ListTokens: it needs the admin scope"]
        assert run("tokens", "revoke", "2")[0] == 0
        status, _, err = run("--token", secret, "studies", "list")
        assert status == 1 and err == ["trialplane: UNAUTHENTICATED (TOKEN_INVALID): the bearer token was revoked"]
        status, _, err = run("tokens", "create", "x", "--expires-in", "soon")
        assert status == 2 and "give a positive count and a unit" in err[0]
        monkeypatch.setenv("TRIALPLANE_TOKEN_FILE", str(db_path.parent / "missing.token"))
        status, _, err = run("studies", "list")
        assert status == 2 and "cannot read the token in TRIALPLANE_TOKEN_FILE" in err[0]
    finally:
        srv.stop()
