"""The server as a deployed process: flags, reflection, health, shutdown, schema."""

import filecmp
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import ROOT, Client, ServerProcess, error_of, postgres, tool
from trialplane.v1 import (
    trial_pb2,
    worker_pb2,
)
from trialplane.v1 import (
    trial_service_pb2 as ts,
)
from trialplane.v1 import (
    worker_service_pb2 as ws,
)


def test_serve_help_documents_every_flag():
    out = subprocess.run([tool("trialplane"), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ["--host", "--port", "--db", "--shutdown-grace", "--watchdog-interval", "--heartbeat-timeout", "--max-message-bytes",
                 "--reader-threads", "--max-buffered-samples", "--log-level"]:
        assert flag in out


def test_grpcurl_lists_services_and_calls_without_protos(process):
    grpcurl = tool("grpcurl")
    listed = subprocess.run([grpcurl, "-plaintext", process.address, "list"], capture_output=True, text=True, check=True)
    services = set(listed.stdout.split())
    assert {
        "trialplane.v1.StudyService", "trialplane.v1.TrialService", "trialplane.v1.WorkerService",
        "trialplane.v1.MetricsService", "trialplane.v1.CheckpointService", "trialplane.v1.ProfilerService",
        "trialplane.v1.LogService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
    } <= services
    created = subprocess.run(
        [grpcurl, "-plaintext", "-d", '{"trial": {"name": "from-grpcurl", "tags": ["cli"]}}', process.address,
         "trialplane.v1.TrialService/CreateTrial"],
        capture_output=True, text=True, check=True,
    )
    assert '"name": "from-grpcurl"' in created.stdout
    assert '"state": "TRIAL_STATE_QUEUED"' in created.stdout
    bad = subprocess.run(
        [grpcurl, "-plaintext", "-d", '{"id": 1, "state": "TRIAL_STATE_PAUSED"}', process.address,
         "trialplane.v1.TrialService/ReportTrialState"],
        capture_output=True, text=True,
    )
    assert bad.returncode != 0
    assert "FailedPrecondition" in bad.stderr and "ILLEGAL_TRANSITION" in bad.stderr


def test_health_reports_serving(process):
    with grpc.insecure_channel(process.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ["", "trialplane.v1.TrialService"]:
            resp = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_sigterm_drains_in_flight_calls_and_keeps_data(db_path, process):
    client = Client.connect(process.address)
    trial = client.trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name="drain", resources=trial_pb2.Resources(worker_count=2))))
    worker = client.workers.RegisterWorker(ws.RegisterWorkerRequest(worker=worker_pb2.Worker(trial_id=trial.id, type="chief", rank=0)))
    # A rendezvous waiting for a second worker is in flight when SIGTERM arrives.
    pending = client.workers.GetRendezvousInfo.future(
        ws.GetRendezvousInfoRequest(trial_id=trial.id, worker_id=worker.id), timeout=20
    )
    started = threading.Event()
    pending.add_done_callback(lambda _: started.set())
    code, stderr = process.terminate()
    assert code == 0, stderr
    assert "trialplane stopped" in stderr
    # The in-flight call was answered (cancelled by the drain or completed), not left hanging.
    assert started.wait(5)
    client.channel.close()
    if postgres.BACKEND == "sqlite":
        # Checkpointed at shutdown: the database is one file again.
        assert not Path(str(db_path) + "-wal").exists() or Path(str(db_path) + "-wal").stat().st_size == 0

    again = ServerProcess(db_path)
    try:
        c2 = Client.connect(again.address)
        assert c2.trials.GetTrial(ts.GetTrialRequest(id=trial.id)).name == "drain"
        assert c2.workers.GetWorker(ws.GetWorkerRequest(id=worker.id)).type == "chief"
        c2.channel.close()
    finally:
        again.terminate()


def test_port_in_use_is_a_clear_error_and_leaves_nothing_behind(db_path, process, tmp_path):
    port = process.address.rsplit(":", 1)[1]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [tool("trialplane"), "serve", "--port", port, "--db", str(elsewhere / "other.db")],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("trialplane: cannot listen on 127.0.0.1:" + port)
    # No database, no WAL, no journal: a failed start creates no file.
    assert sorted(os.listdir(elsewhere)) == []


def test_the_listening_line_is_printed_once(process):
    process.proc.send_signal(signal.SIGTERM)
    out, err = process.proc.communicate(timeout=30)
    assert process.proc.returncode == 0, err
    # ServerProcess read the first one from stdout already.
    assert "listening on" not in out + err, out + err


def test_a_search_rpc_on_a_missing_study_is_not_found_and_the_server_keeps_serving(client):
    from trialplane.v1 import study_service_pb2, study_service_pb2_grpc

    studies = study_service_pb2_grpc.StudyServiceStub(client.channel)
    err = error_of(studies.CheckEarlyStopping, study_service_pb2.CheckEarlyStoppingRequest(study_id=404))
    assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "RESOURCE_NOT_FOUND")
    assert client.trials.ListTrials(ts.ListTrialsRequest()).next_page_token == ""


def test_generated_code_matches_protos(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_protos
    finally:
        sys.path.pop(0)
    gen_protos.generate(tmp_path)
    for package in gen_protos.PACKAGES:
        fresh = tmp_path / package
        committed = ROOT / "generated" / package
        names = sorted(p.name for p in fresh.iterdir() if p.is_file())
        assert names == sorted(p.name for p in committed.iterdir() if p.is_file() and p.suffix in (".py", ".pyi"))
        match, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
        assert not mismatch and not errors, f"generated/ is stale; run `make proto`: {mismatch + errors}"


def test_buf_lint_is_clean():
    # Through the script: buf alone cannot resolve the google/api imports offline.
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "buf_check.py"), "lint"], cwd=ROOT,
                            capture_output=True, text=True,
                            env={**os.environ, "BUF_CACHE_DIR": str(ROOT / ".venv" / "buf-cache")})
    assert result.returncode == 0, result.stdout + result.stderr


def _every_method():
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2
    from trialplane.server.app import SERVICE_FILES

    files = [*SERVICE_FILES, health_pb2, reflection_pb2]
    for service in (s for f in files for s in f.DESCRIPTOR.services_by_name.values()):
        for m in service.methods:
            yield f"/{service.full_name}/{m.name}", m.client_streaming, m.server_streaming


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x0b", b"\x0a\x05ab"], ids=["varint", "open-group", "short-field"])
def test_bytes_that_are_no_message_are_malformed_requests_on_every_method(client, garbage):
    methods = list(_every_method())
    assert len(methods) > 50
    for method, client_streaming, server_streaming in methods:
        kind = {(False, False): client.channel.unary_unary, (False, True): client.channel.unary_stream,
                (True, False): client.channel.stream_unary, (True, True): client.channel.stream_stream}
        call = kind[(client_streaming, server_streaming)](method, request_serializer=None, response_deserializer=None)
        request = iter([garbage]) if client_streaming else garbage
        err = error_of(lambda call=call, request=request, server_streaming=server_streaming:
                       list(call(request, timeout=10)) if server_streaming else call(request, timeout=10))
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST"), (method, err)
        assert method in err.message
    # The server keeps serving.
    assert client.trials.ListTrials(ts.ListTrialsRequest()).next_page_token == ""


def test_the_database_is_an_address_this_build_serves(tmp_path):
    url = f"sqlite:///{tmp_path / 'by-url.db'}"
    started = ServerProcess(url)
    try:
        assert (tmp_path / "by-url.db").exists()
    finally:
        assert started.terminate()[0] == 0
    result = subprocess.run([tool("trialplane"), "serve", "--port", "0", "--db", "mysql://root@127.0.0.1/test"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("trialplane: unknown database 'mysql'") and "sqlite://" in line


def test_an_unreachable_postgresql_is_one_clear_line_and_exit_1():
    result = subprocess.run([tool("trialplane"), "serve", "--port", "0", "--db", "postgresql://nobody@127.0.0.1:1/none"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("trialplane: cannot connect to PostgreSQL:") and "Connection refused" in line
