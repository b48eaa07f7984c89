"""`trialplane serve` as a process: settings from the environment and a
config file, the non-loopback refusal, and JSON log lines."""

from __future__ import annotations

import json
import os
import subprocess

from support import ServerProcess, tool
from support.postgres import database_url


def environment(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRIALPLANE_")}
    return {**base, **extra}


def test_a_non_loopback_host_is_refused_before_anything_is_bound_or_created(tmp_path):
    db = tmp_path / "never.db"
    for extra in (["--host", "0.0.0.0"], ["--host", "::", "--no-auth"]):
        result = subprocess.run([tool("trialplane"), "serve", "--port", "0", "--db", str(db), *extra],
                                capture_output=True, text=True, timeout=60, env=environment())
        assert result.returncode == 2 and result.stdout == "", result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"trialplane: refusing to listen on {extra[1]}, which is not a loopback address")
        assert "--insecure" in line
    # The same from the environment.
    result = subprocess.run([tool("trialplane"), "serve", "--port", "0", "--db", str(db)], capture_output=True,
                            text=True, timeout=60, env=environment(TRIALPLANE_HOST="0.0.0.0"))
    assert result.returncode == 2 and "refusing to listen on 0.0.0.0" in result.stderr
    assert not db.exists()


def test_settings_from_a_config_file_and_the_environment_reach_the_server(tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text(f"db: {database_url(tmp_path / 'from-file.db')}\nlog-format: json\nlog-level: DEBUG\n")
    proc = subprocess.Popen(
        [tool("trialplane"), "serve", "--config", str(config), "--shutdown-grace", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=environment(TRIALPLANE_PORT="0", TRIALPLANE_LOG_LEVEL="INFO", TRIALPLANE_NO_AUTH="1"),
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("trialplane listening on 127.0.0.1:"), proc.stderr.read()
        assert not line.strip().endswith(":50051")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    entries = [json.loads(text) for text in err.splitlines() if text.startswith("{")]
    assert entries, err
    assert {e["level"] for e in entries} <= {"INFO", "WARNING"}, "the environment's INFO beats the file's DEBUG"
    stopped = [e for e in entries if e["message"] == "trialplane stopped"]
    assert len(stopped) == 1 and stopped[0]["logger"] == "trialplane.server"
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)
    assert not (tmp_path / "trialplane-admin.token").exists(), "TRIALPLANE_NO_AUTH=1 turned auth off"


def test_json_logs_of_a_running_server(db_path):
    process = ServerProcess(db_path, "--log-format", "json")
    code, err = process.terminate()
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    parsed = [json.loads(line) for line in lines]
    assert parsed[-1]["message"] == "trialplane stopped"
    assert any(p["message"].startswith("shutting down: draining in-flight calls") for p in parsed)
