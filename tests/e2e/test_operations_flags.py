"""`trialplane serve` with the metrics and limit flags, as a process: the
flags reach the server (the endpoint answers, a lowered limit refuses)."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request

import grpc
from support import Client, ServerProcess, error_of, tool
from support.trials import S, new_trial, report
from trialplane.v1 import log_pb2
from trialplane.v1 import log_service_pb2 as ls

FLAGS = ["--metrics-port", "--metrics-host", "--max-batch-points", "--max-batch-items", "--max-batch-samples",
         "--max-streams-per-principal", "--stream-retry-seconds", "--max-stream-seconds"]


def test_serve_help_documents_the_operations_flags():
    out = subprocess.run([tool("trialplane"), "serve", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in FLAGS:
        assert flag in out


def test_the_flags_reach_the_server(db_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    process = ServerProcess(db_path, "--metrics-port", str(metrics_port), "--max-batch-items", "3")
    client = Client.connect(process.address)
    try:
        trial = new_trial(client)
        report(client, trial.id, S.TRIAL_STATE_RUNNING)
        lines = [log_pb2.TaskLog(trial_id=trial.id, message=str(i)) for i in range(4)]
        err = error_of(client.logs.AddLogs, ls.AddLogsRequest(logs=lines))
        assert (err.code, err.metadata["limit"], err.metadata["limit_name"]) == (
            grpc.StatusCode.RESOURCE_EXHAUSTED, "3", "max_batch_items")
        counted = ('trialplane_rpc_calls_total{code="RESOURCE_EXHAUSTED",method="AddLogs",'
                   'service="trialplane.v1.LogService"} 1.0')
        # The call is counted once its handler has returned, which may be
        # just after the client has its answer.
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
                text = response.read().decode()
            if counted in text or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert counted in text
    finally:
        client.channel.close()
        code, _ = process.terminate()
    assert code == 0
