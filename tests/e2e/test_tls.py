"""TLS and mutual TLS through real servers, with certificates the tests make
(support/certs.py): calls, refusals, a certificate reload while a stream
stays open, and the start-up errors of bad files."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
from support import start_server, tool
from support.certs import CA
from trialplane.client import TLS, Client, RetryPolicy, Unavailable
from trialplane.v1 import trial_pb2
from trialplane.v1 import trial_service_pb2 as ts

# Each test client gets its own connection, so every one makes a handshake of its own.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
NO_RETRY = RetryPolicy(max_attempts=1)


def client(address: str, tls) -> Client:
    return Client(address, tls=tls, retry=NO_RETRY, timeout=10, channel_options=OWN_CONNECTION)


def refused(address: str, tls) -> bool:
    """Whether a call over a new connection with these TLS settings fails to connect."""
    with client(address, tls) as c:
        try:
            c.trials.create(name="should-not-arrive")
        except Unavailable:
            return True
    return False


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate it signed (server.pem, server.key) and its ca.pem."""
    ca = CA("server CA")
    cert, key = ca.issue("trialplane server").write(tmp_path, "server")
    return ca, ca.write(tmp_path / "ca.pem"), cert, key


@pytest.fixture
def tls_server(db_path, pki):
    _, _, cert, key = pki
    srv = start_server(db_path, tls_cert=str(cert), tls_key=str(key))
    yield srv
    srv.stop()


@pytest.fixture
def mtls(db_path, pki, tmp_path):
    """A server that requires client certificates signed by the client CA;
    yields it with the client CA."""
    _, _, cert, key = pki
    client_ca = CA("client CA")
    srv = start_server(db_path, tls_cert=str(cert), tls_key=str(key),
                       tls_client_ca=str(client_ca.write(tmp_path / "client-ca.pem")))
    yield srv, client_ca
    srv.stop()


def test_a_unary_call_over_tls(tls_server, pki):
    _, ca_path, _, _ = pki
    with client(tls_server.address, ca_path) as c:
        trial = c.trials.create(name="over-tls")
        assert c.trials.get(trial.id).name == "over-tls"


def test_a_plaintext_client_cannot_call_a_tls_server(tls_server, pki):
    assert refused(tls_server.address, False)
    # A client that trusts another CA is refused too: the server's certificate is checked.
    assert refused(tls_server.address, CA("someone else").write(pki[1].parent / "other.pem"))


def test_mutual_tls_requires_a_certificate_of_the_client_ca(mtls, pki, tmp_path):
    srv, client_ca = mtls
    ca_path = pki[1]
    assert refused(srv.address, ca_path), "no client certificate"
    stranger_cert, stranger_key = CA("another client CA").issue("stranger", client=True).write(tmp_path, "stranger")
    assert refused(srv.address, TLS(ca=ca_path, cert=stranger_cert, key=stranger_key)), "certificate of another CA"
    cert, key = client_ca.issue("worker-1", client=True).write(tmp_path, "worker")
    with client(srv.address, TLS(ca=ca_path, cert=cert, key=key)) as c:
        assert c.trials.create(name="mutual").name == "mutual"


def test_the_sdk_takes_tls_from_the_environment(mtls, pki, tmp_path, monkeypatch):
    srv, client_ca = mtls
    cert, key = client_ca.issue("from-env", client=True).write(tmp_path, "env-client")
    monkeypatch.setenv("TRIALPLANE_TLS_CA", str(pki[1]))
    monkeypatch.setenv("TRIALPLANE_TLS_CERT", str(cert))
    monkeypatch.setenv("TRIALPLANE_TLS_KEY", str(key))
    with client(srv.address, None) as c:
        assert c.tls == TLS(ca=str(pki[1]), cert=str(cert), key=str(key))
        assert c.trials.create(name="env-tls").name == "env-tls"
    # tls=False is plaintext whatever the environment says.
    assert refused(srv.address, False)
    monkeypatch.delenv("TRIALPLANE_TLS_KEY")
    with pytest.raises(ValueError, match="TLS client cert needs its key"):
        Client(srv.address)


def _replace(path, data: bytes) -> None:
    """Writes a file the way certificate managers do: a new file renamed into place."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


def test_new_certificates_are_used_without_a_restart_and_open_streams_go_on(tls_server, pki, tmp_path, caplog):
    ca, ca_path, cert_path, key_path = pki
    old = client(tls_server.address, ca_path)
    trial = old.trials.create(name="watched")
    stream = old.stubs.trials.WatchTrialEvents(ts.WatchTrialEventsRequest(trial_id=trial.id), timeout=60)
    received = iter(stream)
    old.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=trial_pb2.TRIAL_STATE_PULLING))
    # The stream is open once an event came through it.
    assert next(received).event.to_state == trial_pb2.TRIAL_STATE_PULLING

    new_ca = CA("next server CA")
    new_ca_path = new_ca.write(tmp_path / "next-ca.pem")
    issued = new_ca.issue("trialplane server, renewed")
    _replace(key_path, issued.key)
    _replace(cert_path, issued.cert)

    with client(tls_server.address, new_ca_path) as renewed:
        renewed.stubs.trials.ReportTrialState(ts.ReportTrialStateRequest(id=trial.id, state=trial_pb2.TRIAL_STATE_STARTING))
    assert refused(tls_server.address, ca_path), "a new handshake still got the old certificate"
    # The stream opened under the old certificate sees what happened after the swap.
    after = next(received).event
    assert (after.from_state, after.to_state) == (trial_pb2.TRIAL_STATE_PULLING, trial_pb2.TRIAL_STATE_STARTING)
    # ... and the old connection still takes calls.
    assert old.trials.get(trial.id).state == trial_pb2.TRIAL_STATE_STARTING
    stream.close()
    old.close()

    # A key that does not load keeps the renewed certificate in use, with one warning.
    caplog.set_level(logging.WARNING, logger="trialplane.server.tls")
    _replace(key_path, b"not a key")
    for _ in range(3):
        with client(tls_server.address, new_ca_path) as c:
            assert c.trials.get(trial.id).name == "watched"
    warnings = [r for r in caplog.records if r.name == "trialplane.server.tls" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "not reloaded" in warnings[0].getMessage() and str(key_path) in warnings[0].getMessage()


# --- start-up errors, through the installed command ---------------------------------------------------------------


def serve(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIALPLANE_")}
    return subprocess.run([tool("trialplane"), "serve", "--port", "0", *args], capture_output=True, text=True,
                          timeout=60, env={**environ, **(env or {})}, cwd=cwd)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


def test_bad_tls_files_stop_the_start_with_one_line(pki, tmp_path):
    _, ca_path, cert, key = pki
    db = tmp_path / "never.db"
    other_cert, other_key = CA("other").issue("other").write(tmp_path, "other")
    (tmp_path / "notes.txt").write_text("hello\n")
    cases = [
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(key)],
         f"cannot read the TLS certificate {tmp_path / 'missing.pem'}: No such file or directory"),
        (["--tls-cert", str(tmp_path / "notes.txt"), "--tls-key", str(key)], "is not PEM"),
        (["--tls-cert", str(cert), "--tls-key", str(other_key)],
         f"the TLS key {other_key} is not the key of the certificate in {cert}"),
        (["--tls-cert", str(cert), "--tls-key", str(tmp_path / "notes.txt")], "is not PEM"),
        (["--tls-cert", str(cert)], "--tls-cert needs --tls-key"),
        (["--tls-client-ca", str(ca_path)], "--tls-client-ca needs --tls-cert and --tls-key"),
        (["--tls-cert", str(cert), "--tls-key", str(key), "--tls-client-ca", str(tmp_path / "notes.txt")],
         "TLS client CA"),
    ]
    for args, expected in cases:
        line = one_error_line(serve("--db", str(db), *args))
        assert line.startswith("trialplane: ") and expected in line, (args, line)
    checked = serve("--check-config", "--tls-cert", str(cert), "--tls-key", str(other_key))
    assert checked.returncode == 2
    assert checked.stderr.splitlines() == [f"trialplane: the TLS key {other_key} is not the key of the certificate in {cert}"]
    assert checked.stdout.splitlines()[0].split() == ["setting", "value", "from"]
    assert not db.exists()
    assert other_cert.exists()


def test_an_encrypted_key_is_refused_with_what_to_do(pki, tmp_path):
    from cryptography.hazmat.primitives import serialization

    _, _, cert, key = pki
    loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    locked = tmp_path / "locked.key"
    locked.write_bytes(loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"pass")))
    line = one_error_line(serve("--db", str(tmp_path / "x.db"), "--tls-cert", str(cert), "--tls-key", str(locked)))
    assert "is encrypted" in line


def test_a_tls_server_process_serves_and_names_tls_in_check_config(pki, tmp_path):
    from support import ServerProcess

    _, ca_path, cert, key = pki
    process = ServerProcess(tmp_path / "tls.db", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        with client(process.address, ca_path) as c:
            assert c.trials.create(name="process").name == "process"
    finally:
        code, err = process.terminate()
    assert code == 0, err
    checked = serve("--check-config", "--tls-cert", str(cert), "--tls-key", str(key))
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[-1] == "configuration ok: 127.0.0.1:0, TLS, auth on"


# --- the CLI and the agent ------------------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRIALPLANE_")}
    return subprocess.run([tool("trialplane"), *args], capture_output=True, text=True, timeout=60,
                          env={**environ, **(env or {})})


def test_the_cli_speaks_tls_and_mutual_tls(mtls, pki, tmp_path):
    srv, client_ca = mtls
    ca_path = str(pki[1])
    cert, key = (str(p) for p in client_ca.issue("cli", client=True).write(tmp_path, "cli"))
    with client(srv.address, TLS(ca=ca_path, cert=cert, key=key)) as c:
        trial = c.trials.create(name="seen-by-cli")
    shown = cli("--address", srv.address, "--tls-ca", ca_path, "--tls-cert", cert, "--tls-key", key,
                "-o", "json", "trials", "show", str(trial.id))
    assert shown.returncode == 0, shown.stderr
    assert '"name": "seen-by-cli"' in shown.stdout
    # The same from the environment, and the flags after the command.
    from_env = cli("trials", "show", str(trial.id), "--address", srv.address, "-o", "json",
                   env={"TRIALPLANE_TLS_CA": ca_path, "TRIALPLANE_TLS_CERT": cert, "TRIALPLANE_TLS_KEY": key})
    assert from_env.returncode == 0, from_env.stderr
    assert '"name": "seen-by-cli"' in from_env.stdout
    without_cert = cli("--address", srv.address, "--tls-ca", ca_path, "trials", "show", str(trial.id))
    assert without_cert.returncode == 1
    assert without_cert.stderr.startswith(f"trialplane: cannot reach the server at {srv.address}")
    half = cli("--address", srv.address, "--tls-cert", cert, "trials", "show", str(trial.id))
    assert (half.returncode, half.stderr.strip()) == (
        2, "trialplane: a TLS client cert needs its key too ($TRIALPLANE_TLS_CERT and $TRIALPLANE_TLS_KEY in the environment)")
    missing = cli("--address", srv.address, "--tls-ca", str(tmp_path / "nope.pem"), "trials", "show", "1")
    assert (missing.returncode, missing.stderr.strip()) == (
        2, f"trialplane: cannot read the TLS CA file {tmp_path / 'nope.pem'}: No such file or directory")


CHILD = """
import os
from trialplane.client import init
with init() as run:
    run.log(1, {"loss": 0.25})
print("child tls:", os.environ["TRIALPLANE_TLS_CA"], os.environ["TRIALPLANE_TLS_CERT"], os.environ["TRIALPLANE_TLS_KEY"])
"""


def test_the_agent_and_its_training_speak_mutual_tls(mtls, pki, tmp_path):
    srv, client_ca = mtls
    ca_path = str(pki[1])
    cert, key = (str(p) for p in client_ca.issue("agent", client=True).write(tmp_path, "agent"))
    tls = TLS(ca=ca_path, cert=cert, key=key)
    with client(srv.address, tls) as c:
        trial = c.trials.create(name="agent-over-mtls")
        agent = subprocess.run(
            [tool("trialplane"), "--address", srv.address, "agent", "--trial", str(trial.id),
             "--tls-ca", ca_path, "--tls-cert", cert, "--tls-key", key,
             "--journal-dir", str(tmp_path / "journals"), "--", sys.executable, "-c", CHILD],
            capture_output=True, text=True, timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("TRIALPLANE_")},
        )
        assert agent.returncode == 0, agent.stderr
        assert c.trials.get(trial.id).state == trial_pb2.TRIAL_STATE_COMPLETED
        arrays = c.metrics.history_arrays(trial.id, "loss", group="training")
        assert arrays.values.tolist() == [0.25]
        logged = [line.message for line in c.logs.list(trial.id)]
        assert f"child tls: {ca_path} {cert} {key}" in logged
