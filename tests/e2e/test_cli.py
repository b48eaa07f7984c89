"""The `trialplane` command against a real server: tables, JSON Lines that
parse back into the API's messages, one-line errors and exit statuses.

Most commands run in this process through main() (the same code the console
script runs); what depends on the process itself (the installed script,
tracebacks, exit codes) runs as a subprocess."""

import csv
import json
import signal
import socket
import subprocess
import sys
import threading

import pytest
import yaml
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
from trialplane.v1 import profiler_pb2 as pp
from trialplane.v1 import profiler_service_pb2 as ps
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
    for command in ["serve", "studies", "trials", "metrics", "logs", "checkpoints", "workers", "profiler", "top"]:
        assert f"    {command} " in top
    # --help stays quick: what only printing or talking to a server needs is imported when a command runs.
    probe = ("import sys, contextlib, io\n"
             "from trialplane.client.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
             "    main(['--help'])\n"
             "print(sorted(m for m in ('rich', 'yaml', 'plotext', 'grpc', 'numpy') if m in sys.modules))")
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"
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
    assert len(out) == 20 and all(len(line) <= 80 for line in out)
    rows = [line for line in out if "┤" in line or "│" in line[:8]]
    # The value axis: ticks from the largest value at the top to the smallest at the bottom.
    labels = [float(line.split("┤")[0]) for line in rows if "┤" in line.split("│")[0]]
    assert labels[0] == 2.0 and labels[-1] == 0.0 and labels == sorted(labels, reverse=True)
    # loss falls from 2 at the top left to 0 at the bottom right; acc rises
    # from 0 at the bottom left to the row of 1.0 at the right.
    plot_area = [line.split("┤" if "┤" in line[:8] else "│", 1)[1] for line in rows]
    assert "•" in plot_area[0][:3] and "•" in plot_area[-1][-4:]
    one = next(i for i, line in enumerate(rows) if line.split("┤")[0].strip() == "1.0")
    assert "+" in plot_area[-1][:3] and "+" in plot_area[one][-4:] and "+" not in "".join(plot_area[:one])
    # The step axis with round ticks, its name, and the legend.
    axis = next(i for i, line in enumerate(out) if "└" in line)
    assert out[axis + 1].split() == ["0", "20", "40", "60", "80", "100"]
    assert out[axis + 2].strip() == "step"
    assert out[-1].split() == ["•", "loss", "(│", "min..max)", "+", "acc", "(┊", "min..max)"]

    status, out, err = cli("-o", "json", "metrics", str(trial.id), "--name", "loss", "--plot")
    assert (status, out) == (2, []) and err == ["trialplane: --plot draws a chart; leave out -o to see it, or --plot for the points"]


def test_metrics_plot_log_y_spaces_powers_of_ten_evenly_and_refuses_values_at_or_below_0(cli, sdk):
    trial = sdk.trials.create(name="log")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    for step in range(0, 61):
        report(sdk, trial.id, step, loss=10 ** (2 - step / 20), shifted=1 - step / 30)
    status, out, _ = cli("metrics", str(trial.id), "--name", "loss", "--plot", "--log-y")
    assert status == 0
    labels = [float(line.split("┤")[0]) for line in out if "┤" in line[:10]]
    assert labels[0] == 100 and labels[-1] == 0.1
    # Equal ratios take equal room: the ticks are a geometric sequence.
    ratios = [a / b for a, b in zip(labels, labels[1:])]
    assert max(ratios) / min(ratios) < 1.05, labels
    # Falling by a tenth every 20 steps is a straight line on this axis: the
    # curve crosses the middle row near the middle of the steps.
    rows = [line for line in out if "┤" in line[:10] or line[:10].strip().startswith("│")]
    middle = rows[len(rows) // 2].split("┤" if "┤" in rows[len(rows) // 2] else "│", 1)[1]
    assert abs(middle.index("•") - len(middle) / 2) < len(middle) / 8, rows

    status, out, err = cli("metrics", str(trial.id), "--name", "shifted", "--plot", "--log-y")
    assert (status, out) == (2, [])
    assert err == ["trialplane: --log-y needs values above 0: shifted is -1 between steps 60 and 60"]
    status, out, err = cli("metrics", str(trial.id), "--name", "loss", "--log-y")
    assert (status, err) == (2, ["trialplane: --log-y is for --plot"])


def test_yaml_and_csv_parse_back_to_the_values_written(cli, sdk, study_file):
    study = sdk.studies.create(study_file)
    made = [sdk.trials.create(study.id, f"y{i}", {"lr": 0.01, "optimizer": "sgd"}) for i in range(2)]
    report_state(sdk, made[0].id, trial_pb2.TRIAL_STATE_RUNNING)
    report(sdk, made[0].id, 3, group="validation", val_loss=1 / 3)
    report_state(sdk, made[0].id, trial_pb2.TRIAL_STATE_COMPLETED)  # its running time stops growing

    status, out, _ = cli("-o", "yaml", "trials", "list")
    assert status == 0
    documents = yaml.safe_load("\n".join(out))
    assert [json_format.ParseDict(d, trial_pb2.Trial()) for d in documents] == [sdk.trials.get(t.id) for t in made]
    status, out, _ = cli("-o", "yaml", "trials", "show", str(made[1].id))
    assert status == 0 and json_format.ParseDict(yaml.safe_load("\n".join(out)), trial_pb2.Trial()).name == "y1"
    status, out, _ = cli("-o", "yaml", "trials", "list", "--state", "paused")
    assert status == 0 and yaml.safe_load("\n".join(out)) == []

    status, out, _ = cli("-o", "csv", "trials", "list")
    rows = list(csv.DictReader(out))
    assert list(rows[0]) == ["ID", "STUDY", "NAME", "STATE", "STEPS", "BEST", "DURATION"]
    assert [(r["ID"], r["NAME"], r["STATE"], r["STEPS"]) for r in rows] == [
        (str(made[0].id), "y0", "COMPLETED", "0"), (str(made[1].id), "y1", "QUEUED", "0")]
    # Every digit of the value, where the table shows six.
    assert float(rows[0]["BEST"]) == 1 / 3 and rows[1]["BEST"] == ""
    status, out, _ = cli("trials", "list")
    assert out[1].split()[5] == "0.333333"

    status, out, _ = cli("-o", "csv", "studies", "show", "cli-study")
    (row,) = csv.DictReader(out)
    assert (row["ID"], row["NAME"], row["STATE"], row["TRIALS"], row["OBJECTIVE"]) == (
        str(study.id), "cli-study", "ACTIVE", "2", "min val_loss")


def test_metrics_and_logs_as_yaml_and_csv(cli, sdk):
    trial = sdk.trials.create(name="mc")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    for step in (1, 2, 3):
        report(sdk, trial.id, step, loss=1 / step, acc=step / 7)
    sdk.stubs.logs.AddLogs(ls.AddLogsRequest(logs=[
        log_pb2.TaskLog(trial_id=trial.id, message="a, \"quoted\" line", worker="w1"),
        log_pb2.TaskLog(trial_id=trial.id, message="second", level=log_pb2.LOG_LEVEL_WARNING)]))

    status, out, _ = cli("-o", "csv", "metrics", str(trial.id), "--name", "loss", "--name", "acc")
    assert status == 0
    assert [[float(c) for c in row] for row in list(csv.reader(out))[1:]] == [
        [1, 1.0, 1 / 7], [2, 0.5, 2 / 7], [3, 1 / 3, 3 / 7]]
    assert out[0] == "STEP,loss,acc"
    status, out, _ = cli("-o", "yaml", "metrics", str(trial.id), "--name", "acc")
    (series,) = [json_format.ParseDict(d, ms.MetricSeries()) for d in yaml.safe_load("\n".join(out))]
    assert (list(series.steps), list(series.values)) == ([1, 2, 3], [1 / 7, 2 / 7, 3 / 7])
    status, out, _ = cli("-o", "csv", "metrics", str(trial.id))
    summaries = {r["NAME"]: r for r in csv.DictReader(out)}
    assert (summaries["loss"]["COUNT"], float(summaries["loss"]["MIN"]), summaries["loss"]["STEP"]) == ("3", 1 / 3, "3")

    status, out, _ = cli("-o", "csv", "logs", str(trial.id))
    rows = list(csv.DictReader(out))
    assert [(r["LEVEL"], r["WORKER"], r["MESSAGE"]) for r in rows] == [
        ("INFO", "w1", 'a, "quoted" line'), ("WARNING", "", "second")]
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_COMPLETED)
    status, out, _ = cli("-o", "yaml", "logs", str(trial.id), "--follow")
    assert status == 0 and [d["message"] for d in yaml.safe_load("\n".join(out))] == ['a, "quoted" line', "second"]


def stream_profiler(sdk, trial_id, name, values, gpu="", agent="host/0", start_us=1_700_000_000_000_000):
    labels = pp.TrialProfilerMetricLabels(trial_id=trial_id, name=name, agent_id=agent, gpu_uuid=gpu,
                                          metric_type=pp.PROFILER_METRIC_TYPE_SYSTEM)
    batch = pp.TrialProfilerMetricsBatch(values=values, batches=list(range(len(values))),
                                         timestamps=[start_us + i * 1_000_000 for i in range(len(values))], labels=labels)
    answers = list(sdk.stubs.profiler.StreamProfilerMetrics(iter([ps.StreamProfilerMetricsRequest(
        stream_id=f"cli-{name}-{gpu}", sequence=1, batch=batch)])))
    assert answers[-1].acknowledged_sequence == 1 and not answers[-1].rejected_sequence


def test_profiler_lists_series_and_their_buckets(cli, sdk):
    trial = sdk.trials.create(name="prof")
    stream_profiler(sdk, trial.id, "cpu_util", [10.0, 30.0, 20.0, 40.0])
    stream_profiler(sdk, trial.id, "gpu_util", [50.0, 70.0], gpu="GPU-aaaa")
    stream_profiler(sdk, trial.id, "gpu_util", [5.0, 1.0], gpu="GPU-bbbb")

    status, out, _ = cli("profiler", str(trial.id))
    assert status == 0
    assert out[0].split() == ["NAME", "TYPE", "AGENT", "GPU", "COUNT", "LAST", "MIN", "MAX", "UPDATED"]
    rows = [line.split() for line in out[1:]]
    assert [r[:8] for r in rows[1:]] == [["gpu_util", "SYSTEM", "host/0", "GPU-aaaa", "2", "70", "50", "70"],
                                         ["gpu_util", "SYSTEM", "host/0", "GPU-bbbb", "2", "1", "1", "5"]]
    assert rows[0][:7] == ["cpu_util", "SYSTEM", "host/0", "4", "40", "10", "40"]  # no GPU: an empty cell

    status, out, _ = cli("-o", "json", "profiler", str(trial.id))
    parsed = [json_format.Parse(line, ps.ProfilerSamples()) for line in out]
    assert [(p.labels.name, p.buckets[0].count, p.buckets[0].max) for p in parsed] == [
        ("cpu_util", 4, 40.0), ("gpu_util", 2, 70.0), ("gpu_util", 2, 5.0)]

    status, out, _ = cli("profiler", str(trial.id), "--series", "cpu_util", "--buckets", "2")
    assert status == 0 and out[0].split() == ["START", "END", "COUNT", "MIN", "MAX", "LAST"]
    # Two buckets of equal time width: the first two samples and the last two.
    assert [line.split()[4:] for line in out[1:]] == [["2", "10", "30", "30"], ["2", "20", "40", "40"]]
    status, out, _ = cli("-o", "csv", "profiler", str(trial.id), "--series", "gpu_util", "--buckets", "1")
    assert [(r["GPU"], r["COUNT"], r["MIN"], r["MAX"], r["LAST"]) for r in csv.DictReader(out)] == [
        ("GPU-aaaa", "2", "50.0", "70.0", "70.0"), ("GPU-bbbb", "2", "1.0", "5.0", "1.0")]
    status, out, _ = cli("-o", "yaml", "profiler", str(trial.id), "--series", "gpu_util", "--gpu", "GPU-bbbb")
    (only,) = [json_format.ParseDict(d, ps.ProfilerSamples()) for d in yaml.safe_load("\n".join(out))]
    assert only.labels.gpu_uuid == "GPU-bbbb" and sum(b.count for b in only.buckets) == 2

    status, out, err = cli("profiler", str(trial.id), "--series", "disk")
    assert (status, out) == (1, []) and err == [
        f"trialplane: trial {trial.id} has no profiler series disk (it has cpu_util, gpu_util)"]
    status, out, err = cli("profiler", "999")
    assert (status, out, err) == (1, [], ["trialplane: NOT_FOUND (RESOURCE_NOT_FOUND): trial 999 not found"])


def test_top_once_lists_the_running_trials(cli, sdk, study_file):
    study = sdk.studies.create(study_file)
    running = sdk.trials.create(study.id, "busy", {"lr": 0.01, "optimizer": "adam"})
    sdk.trials.create(study.id, "waiting", {"lr": 0.02, "optimizer": "adam"})
    report_state(sdk, running.id, trial_pb2.TRIAL_STATE_RUNNING)
    report(sdk, running.id, 7, group="validation", val_loss=0.25)
    sdk.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(
        id=running.id, state=trial_pb2.TRIAL_STATE_RUNNING, steps_completed=7))
    worker = sdk.stubs.workers.RegisterWorker(ws.RegisterWorkerRequest(worker=worker_pb2.Worker(
        trial_id=running.id, type="chief", rank=0)))
    sdk.stubs.workers.ReportWorkerState(ws.ReportWorkerStateRequest(id=worker.id, state=worker_pb2.WORKER_STATE_RUNNING))
    sdk.stubs.workers.HeartbeatWorker(ws.HeartbeatWorkerRequest(id=worker.id))

    status, out, _ = cli("top", "--once")
    assert status == 0 and len(out) == 2
    assert out[0].split() == ["ID", "STUDY", "NAME", "STATE", "STEPS", "BEST", "REPORTED", "HEARTBEAT", "WORKERS",
                              "RUNNING"]
    row = out[1].split()
    assert row[:6] == [str(running.id), str(study.id), "busy", "RUNNING", "7", "0.25"]
    # Ages in whole seconds ("0s" just now) and the run's one worker running.
    assert row[6].endswith("s") and row[7].endswith("s") and row[8] == "1/1"

    status, out, _ = cli("-o", "csv", "top", "--study", "cli-study")
    ((first,)) = list(csv.DictReader(out))
    assert (first["NAME"], first["WORKERS"], float(first["BEST"])) == ("busy", "1/1", 0.25)


def test_metrics_follow_prints_points_until_the_trial_ends(cli, sdk):
    trial = sdk.trials.create(name="followed")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    for step in (1, 2):
        report(sdk, trial.id, step, loss=1 / step)
    result = {}
    follower = threading.Thread(target=lambda: result.update(status=cli("metrics", str(trial.id), "--follow")))
    follower.start()
    for step in (3, 4):
        report(sdk, trial.id, step, loss=1 / step)
    report(sdk, trial.id, 4, group="validation", val=0.5)
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_COMPLETED)
    follower.join(60)
    assert not follower.is_alive(), "metrics --follow did not end with the trial"
    status, out, _ = result["status"]
    assert status == 0 and out[0].split() == ["STEP", "GROUP", "NAME", "VALUE"]
    rows = sorted(tuple(line.split()) for line in out[1:])
    assert rows == [("1", "training", "loss", "1"), ("2", "training", "loss", "0.5"),
                    ("3", "training", "loss", "0.333333"), ("4", "training", "loss", "0.25"),
                    ("4", "validation", "val", "0.5")]

    # The trial has ended: the follow prints what there is and stops.
    status, out, _ = cli("-o", "csv", "metrics", str(trial.id), "--follow", "--group", "training", "--name", "loss")
    assert status == 0 and [(r["STEP"], float(r["VALUE"])) for r in csv.DictReader(out)] == [
        ("1", 1.0), ("2", 0.5), ("3", 1 / 3), ("4", 0.25)]


def test_studies_suggest_stop_and_complete(cli, sdk, study_file, tmp_path):
    study = sdk.studies.create(study_file)
    status, out, _ = cli("studies", "suggest", "cli-study", "--count", "2")
    assert status == 0 and len(out) == 3
    suggested = [int(line.split()[0]) for line in out[1:]]
    for trial_id in suggested:
        trial = sdk.trials.get(trial_id)
        assert trial.study_id == study.id and trial.state == trial_pb2.TRIAL_STATE_QUEUED
        assert 1e-4 <= trial.hyperparameters["lr"].double_value <= 0.1
    assert [line.split()[3] for line in out[1:]] == ["QUEUED", "QUEUED"]

    # A repeat with the same client id gets that client's unfinished trials back.
    status, out, _ = cli("-o", "json", "studies", "suggest", str(study.id), "--client-id", "driver-1")
    first = json_format.Parse(out[0], trial_pb2.Trial())
    status, out, _ = cli("-o", "json", "studies", "suggest", str(study.id), "--client-id", "driver-1")
    assert json_format.Parse(out[0], trial_pb2.Trial()).id == first.id
    assert len(list(sdk.trials.list(study.id))) == 3

    status, out, _ = cli("studies", "stop", "cli-study", "--reason", "enough")
    assert status == 0 and out[1].split()[1:3] == ["cli-study", "STOPPED"]
    assert sdk.studies.get(study.id).state_message == "enough"
    assert {sdk.trials.get(t).state for t in suggested} == {trial_pb2.TRIAL_STATE_CANCELED}
    status, out, err = cli("studies", "complete", "cli-study")
    assert status == 1 and out == [] and len(err) == 1
    assert err[0].startswith("trialplane: FAILED_PRECONDITION (ILLEGAL_TRANSITION): ")

    other = tmp_path / "other.yaml"
    other.write_text(STUDY_YAML.replace("name: cli-study", "name: cli-other"))
    sdk.studies.create(other)
    status, out, _ = cli("-o", "yaml", "studies", "complete", "cli-other")
    (done,) = yaml.safe_load("\n".join(out))
    assert status == 0 and done["name"] == "cli-other" and done["state"] == "STUDY_STATE_COMPLETED"
    status, out, err = cli("studies", "suggest", "cli-other")
    assert status == 0 and out[1:] == [] and err == ["trialplane: 0 of 1 trials: the study hands out no more trials"]


def test_a_driver_asks_for_started_trials_and_completes_them_with_a_result(cli, sdk, study_file):
    study = sdk.studies.create(study_file)
    status, out, _ = cli("-o", "json", "studies", "suggest", "cli-study", "--start", "--client-id", "d1")
    trial = json_format.Parse(out[0], trial_pb2.Trial())
    assert status == 0 and trial.state == trial_pb2.TRIAL_STATE_RUNNING and trial.study_id == study.id
    status, out, _ = cli("trials", "complete", str(trial.id), "--metric", "val_loss=0.25", "--metric", "acc=0.5",
                         "--steps", "30", "--message", "done by hand")
    assert status == 0 and out[1].split()[3] == "COMPLETED"
    done = sdk.trials.get(trial.id)
    assert (done.searcher_metric_value, done.steps_completed) == (0.25, 30)
    assert {m.name: m.last for m in done.summary_metrics} == {"val_loss": 0.25, "acc": 0.5}
    assert list(sdk.trials.events(trial.id))[-1].message == "done by hand"
    with pytest.raises(SystemExit) as usage:
        cli("trials", "complete", str(trial.id), "--metric", "val_loss")
    assert usage.value.code == 2
    status, out, err = cli("trials", "complete", str(trial.id))
    assert status == 1 and err[-1].startswith("trialplane: FAILED_PRECONDITION (ILLEGAL_TRANSITION): ")


def test_studies_validate_update_and_check_stopping(cli, sdk, study_file, tmp_path):
    status, out, _ = cli("studies", "validate", "-f", str(study_file))
    assert status == 0 and out[0].endswith("are valid") and "tpe" in out[1] and "medianstop" in out[2]
    bad = tmp_path / "bad.yaml"
    bad.write_text(STUDY_YAML.replace("min: 1e-4", "min: 0") + "algorithm: {name: tpe, settings: [{name: gamma, value: '-1'}]}\n")
    status, out, err = cli("studies", "validate", "-f", str(bad))
    # The space is wrong first: the algorithm is only tried on a valid one.
    assert status == 1 and out == [] and err[0].startswith("trialplane: INVALID_ARGUMENT")
    assert "parameters[0].feasible_space.min" in err[0]
    status, out, _ = cli("-o", "json", "studies", "validate", "-f", str(study_file))
    assert status == 0 and "cmaes" in json.loads(out[0])["algorithms"]
    missing = tmp_path / "missing.yaml"
    status, out, err = cli("studies", "validate", "-f", str(missing))
    assert (status, out, err) == (2, [], [f"trialplane: {missing}: No such file or directory"])

    study = sdk.studies.create(study_file)
    trials = sdk.studies.suggest(study.id, 3, start=True).trials
    for t, loss in zip(trials, (0.5, 0.6, 3.0)):
        for step in (1, 2, 3):
            report(sdk, t.id, step, group="validation", val_loss=loss)
    status, out, _ = cli("studies", "update", "cli-study", "--algorithm", "quasirandom", "--algorithm-setting",
                         "random_state=7", "--early-stopping", "medianstop", "--early-stopping-setting",
                         "min_trials_required=2", "--early-stopping-setting", "start_step=2", "--max-trials", "20")
    assert status == 0 and out[1].split()[1:3] == ["cli-study", "ACTIVE"]
    changed = sdk.studies.get(study.id)
    assert (changed.algorithm.name, [(x.name, x.value) for x in changed.algorithm.settings]) == (
        "quasirandom", [("random_state", "7")])
    assert (changed.early_stopping.name, changed.max_trials) == ("medianstop", 20)
    status, out, _ = cli("studies", "check-stopping", "cli-study")
    assert status == 0 and out[0].split()[:6] == ["TRIAL", "STOP", "RULE", "STEP", "VALUE", "THRESHOLD"]
    verdicts = {int(line.split()[0]): line.split()[1:6] for line in out[1:]}
    assert verdicts[trials[2].id] == ["yes", "medianstop", "3", "3", "0.55"]
    assert [verdicts[t.id][0] for t in trials[:2]] == ["no", "no"]
    status, out, _ = cli("-o", "csv", "studies", "check-stopping", "cli-study", "--trial", str(trials[0].id))
    assert status == 0 and [row["TRIAL"] for row in csv.DictReader(out)] == [str(trials[0].id)]

    status, out, _ = cli("studies", "update", "cli-study", "--early-stopping", "none")
    assert status == 0 and sdk.studies.get(study.id).early_stopping.name == ""
    status, out, err = cli("studies", "update", "cli-study", "--algorithm", "simulated-annealing")
    assert status == 1 and "study.algorithm.name" in err[0]
    status, out, err = cli("studies", "update", "cli-study", "--algorithm-setting", "random_state=1")
    assert status == 2 and "needs --algorithm" in err[0]
    status, out, err = cli("studies", "update", "cli-study")
    assert status == 2 and err[0].startswith("trialplane: nothing to change")
    with pytest.raises(SystemExit) as usage:
        cli("studies", "update", "cli-study", "--algorithm", "tpe", "--algorithm-setting", "gamma")
    assert usage.value.code == 2


def test_top_refreshes_until_ctrl_c_and_exits_0(server, sdk):
    trial = sdk.trials.create(name="watched")
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    top = subprocess.Popen([tool("trialplane"), "--address", server.address, "top", "--interval", "0.2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        frames = []
        while len(frames) < 2:  # two frames: it refreshes
            line = top.stdout.readline()
            assert line, top.stderr.read()
            if line.startswith("live trials: 1 at "):
                frames.append(line)
        assert top.stdout.readline().split()[:3] == ["ID", "STUDY", "NAME"]
        assert top.stdout.readline().split()[:4] == [str(trial.id), "-", "watched", "RUNNING"]
        top.send_signal(signal.SIGINT)
        assert top.wait(60) == 0 and top.stderr.read() == ""
    finally:
        top.kill()
        top.wait()


def test_every_read_command_prints_every_output_that_parses(cli, sdk, study_file):
    study = sdk.studies.create(study_file)
    trial = sdk.trials.create(study.id, "all", {"lr": 0.01, "optimizer": "adam"})
    report_state(sdk, trial.id, trial_pb2.TRIAL_STATE_RUNNING)
    report(sdk, trial.id, 1, loss=0.5)
    sdk.stubs.logs.AddLogs(ls.AddLogsRequest(logs=[log_pb2.TaskLog(trial_id=trial.id, message="hello")]))
    sdk.stubs.checkpoints.ReportCheckpoint(cs.ReportCheckpointRequest(checkpoint=checkpoint_pb2.Checkpoint(
        uuid="ck-all", trial_id=trial.id, state=checkpoint_pb2.CHECKPOINT_STATE_COMPLETED, steps_completed=1)))
    sdk.stubs.workers.RegisterWorker(ws.RegisterWorkerRequest(worker=worker_pb2.Worker(trial_id=trial.id, type="chief")))
    stream_profiler(sdk, trial.id, "cpu_util", [12.5, 25.0])
    t = str(trial.id)
    commands = [["studies", "list"], ["trials", "list"], ["trials", "events", t], ["metrics", t],
                ["metrics", t, "--name", "loss"], ["logs", t], ["checkpoints", t], ["workers", t], ["profiler", t],
                ["profiler", t, "--series", "cpu_util"], ["top", "--once"]]
    shows = [["studies", "show", "cli-study"], ["trials", "show", t]]
    for command in commands + shows:
        status, out, err = cli("-o", "json", *command)
        assert (status, err) == (0, []) and out, command
        assert all(isinstance(json.loads(line), dict) for line in out), command

        status, out, err = cli("-o", "yaml", *command)
        assert (status, err) == (0, []), command
        document = yaml.safe_load("\n".join(out))
        assert isinstance(document, dict) if command in shows else isinstance(document, list) and document, command

        status, out, err = cli("-o", "csv", *command)
        assert (status, err) == (0, []) and len(out) >= 2, command
        if command in commands and command[0] != "logs":  # the table of logs is the lines themselves
            assert next(csv.reader(out)) == cli(*command)[1][0].split(), command


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
