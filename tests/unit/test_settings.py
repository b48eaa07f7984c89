"""`trialplane serve` settings: flags > environment > config file > defaults,
the errors of bad keys and values, --check-config, the non-loopback rule and
JSON log lines. Everything here runs in this process and binds nothing."""

from __future__ import annotations

import io
import json
import logging

import pytest
from trialplane.client.cli.app import main
from trialplane.server import settings
from trialplane.server.config import ServerConfig
from trialplane.server.logs import JsonFormatter


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for name in list(os.environ):
        if name.startswith("TRIALPLANE_"):
            monkeypatch.delenv(name)


def check(capsys, *args: str) -> tuple[int, dict[str, tuple[str, str]], str, list[str]]:
    """Runs serve --check-config: exit status, {setting: (value, from)}, the
    last line of stdout and stderr's lines."""
    code = main(["serve", "--check-config", *args])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    rows = {}
    if lines:
        assert lines[0].split() == ["setting", "value", "from"]
        for line in lines[1:]:
            parts = line.split()
            if len(parts) == 3:
                rows[parts[0]] = (parts[1], parts[2])
    return code, rows, lines[-1] if lines else "", err.splitlines()


def test_defaults_and_where_they_came_from(capsys):
    code, rows, last, err = check(capsys)
    assert (code, err) == (0, [])
    assert rows["host"] == ("127.0.0.1", "default")
    assert rows["port"] == ("50051", "default")
    assert rows["db"] == ("./trialplane.db", "default")
    assert rows["no-auth"] == ("false", "default")
    assert rows["log-format"] == ("text", "default")
    assert last == "configuration ok: 127.0.0.1:50051, plaintext, auth on"
    # Every ServerConfig setting has a row.
    assert {"shutdown-grace", "tls-cert", "tls-key", "tls-client-ca", "insecure", "retention-days"} <= rows.keys()


@pytest.mark.parametrize("suffix, text", [
    (".toml", 'port = 7000\nhost = "localhost"\nshutdown_grace = 3\nno-auth = true\nlog-format = "json"\n'),
    (".yaml", "port: 7000\nhost: localhost\nshutdown_grace: 3\nno-auth: true\nlog-format: json\n"),
])
def test_flag_beats_environment_beats_file_beats_default(capsys, monkeypatch, tmp_path, suffix, text):
    path = tmp_path / f"serve{suffix}"
    path.write_text(text)
    code, rows, _, _ = check(capsys, "--config", str(path))
    assert code == 0
    assert rows["config"] == (str(path), "--config")
    assert rows["port"] == ("7000", str(path))
    assert rows["host"] == ("localhost", str(path))
    assert rows["shutdown-grace"] == ("3.0", str(path))
    assert rows["no-auth"] == ("true", str(path))
    assert rows["log-format"] == ("json", str(path))
    assert rows["watchdog-interval"] == ("5.0", "default")

    monkeypatch.setenv("TRIALPLANE_PORT", "7001")
    monkeypatch.setenv("TRIALPLANE_NO_AUTH", "0")
    _, rows, _, _ = check(capsys, "--config", str(path))
    assert rows["port"] == ("7001", "$TRIALPLANE_PORT")
    assert rows["no-auth"] == ("false", "$TRIALPLANE_NO_AUTH")

    _, rows, last, _ = check(capsys, "--config", str(path), "--port", "7002", "--no-auth")
    assert rows["port"] == ("7002", "--port")
    assert rows["no-auth"] == ("true", "--no-auth")
    assert last == "configuration ok: localhost:7002, plaintext, auth off"


def test_the_config_file_from_the_environment_and_every_key_spelling(capsys, monkeypatch, tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text('db_path = "other.db"\nprofiler_retention_days = 7\nauth = false\ntls-key = "k.pem"\n'
                    'tls_cert = "c.pem"\n')
    monkeypatch.setenv("TRIALPLANE_CONFIG", str(path))
    resolved = settings.resolve(*_parsed([]))
    assert resolved.config_file_source == "$TRIALPLANE_CONFIG"
    config = resolved.config
    assert (config.db_path, config.retention_days, config.auth) == ("other.db", 7, False)
    assert (config.tls_cert, config.tls_key) == ("c.pem", "k.pem")


def _parsed(argv):
    from trialplane.client.cli.app import build_parser

    args = build_parser().parse_args(["serve", *argv])
    return args.serve_parser, args


@pytest.mark.parametrize("text, message", [
    ("prot = 7000\n", "unknown key 'prot'; did you mean 'port'?"),
    ("colour = 'blue'\n", "unknown key 'colour'; the keys are the serve flags: host, port, db,"),
    ("port = 'many'\n", "port: 'many' is not a whole number"),
    ("port = 70000\n", "port: 70000 is above the most allowed, 65535"),
    ("reader-threads = 0\n", "reader-threads: 0 is below the least allowed, 1"),
    ("port = 1.5\n", "port: 1.5 is not a whole number"),
    ("host = 5\n", "host: 5 is not a string"),
    ("log-level = 'LOUD'\n", "log-level: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR"),
    ("insecure = 'maybe'\n", "insecure: 'maybe' is not true or false"),
    ("port = 1\nport_ = 2\n", "unknown key 'port_'"),
    ("tls-cert = 'a'\ntls_cert = 'b'\n", "'tls_cert' sets tls-cert a second time"),
    ("port = \n", "is not valid TOML"),
    ("[server]\nport = 1\n", "unknown key 'server'"),
])
def test_bad_keys_and_values_in_the_file_name_the_key(capsys, tmp_path, text, message):
    path = tmp_path / "serve.toml"
    path.write_text(text)
    code, _, _, err = check(capsys, "--config", str(path))
    assert code == 2
    (line,) = err
    assert line.startswith(f"trialplane: config file {path}") and message in line, line


def test_bad_files_and_environment_values_are_one_line(capsys, monkeypatch, tmp_path):
    (tmp_path / "serve.ini").write_text("port=1\n")
    (tmp_path / "list.yaml").write_text("- port\n")
    for args, message in [
        (["--config", str(tmp_path / "missing.toml")], f"cannot read the config file {tmp_path / 'missing.toml'}"),
        (["--config", str(tmp_path / "serve.ini")], "name it .toml, .yaml or .yml"),
        (["--config", str(tmp_path / "list.yaml")], "expected a table of settings, found list"),
    ]:
        code, _, _, err = check(capsys, *args)
        assert code == 2 and len(err) == 1 and message in err[0], err
    monkeypatch.setenv("TRIALPLANE_SHUTDOWN_GRACE", "soon")
    code, _, _, err = check(capsys)
    assert (code, err) == (2, ["trialplane: $TRIALPLANE_SHUTDOWN_GRACE: 'soon' is not a number"])
    monkeypatch.setenv("TRIALPLANE_SHUTDOWN_GRACE", "-1")
    code, _, _, err = check(capsys)
    assert (code, err) == (2, ["trialplane: $TRIALPLANE_SHUTDOWN_GRACE: -1 is below the least allowed, 0"])
    monkeypatch.delenv("TRIALPLANE_SHUTDOWN_GRACE")
    code, _, _, err = check(capsys, "--port", "-5")
    assert (code, err) == (2, ["trialplane: --port: -5 is below the least allowed, 0"])


def test_secret_values_are_not_printed(capsys, monkeypatch):
    monkeypatch.setenv("TRIALPLANE_DB", "postgresql://tp:hunter2@db.internal:5432/tp?password=hunter2")
    code, rows, _, _ = check(capsys)
    assert code == 0
    assert rows["db"] == ("postgresql://tp:***@db.internal:5432/tp?password=***", "$TRIALPLANE_DB")
    assert "hunter2" not in capsys.readouterr().out


def test_a_setting_named_like_a_secret_is_redacted():
    option = settings.Option("admin_token", "admin-token", ("admin-token",), str, None, secret=True)
    assert settings.redact(option, "abc123") == "***"
    assert settings.options(_parsed([])[0])[0].secret is False


def test_the_database_address_is_checked_without_opening_it(capsys, tmp_path):
    code, _, _, err = check(capsys, "--db", "mysql://root@127.0.0.1/test")
    assert code == 2
    assert err[-1].startswith("trialplane: unknown database 'mysql'")
    code, _, _, _ = check(capsys, "--db", str(tmp_path / "new.db"))
    assert code == 0
    assert not (tmp_path / "new.db").exists()


# --- the non-loopback rule ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("[::]", False), ("10.1.2.3", False), ("no-such-host.invalid", False),
])
def test_what_counts_as_loopback(host, loopback):
    assert settings.is_loopback(host) is loopback


def test_a_non_loopback_host_needs_tls_and_auth_or_insecure():
    tls = {"tls_cert": "c.pem", "tls_key": "k.pem"}
    refusal = settings.exposure_refusal(ServerConfig(host="0.0.0.0"))
    assert refusal == ("refusing to listen on 0.0.0.0, which is not a loopback address, without TLS: "
                       "give --tls-cert and --tls-key, or pass --insecure to serve it anyway")
    assert "without TLS and auth: give --tls-cert and --tls-key and drop --no-auth, or pass --insecure" in settings.exposure_refusal(
        ServerConfig(host="0.0.0.0", auth=False))
    assert "without auth: drop --no-auth, or pass --insecure" in settings.exposure_refusal(ServerConfig(host="::", auth=False, **tls))
    assert settings.exposure_refusal(ServerConfig(host="0.0.0.0", **tls)) is None
    assert settings.exposure_refusal(ServerConfig(host="0.0.0.0", insecure=True, auth=False)) is None
    assert settings.exposure_refusal(ServerConfig(host="127.0.0.1", auth=False)) is None


def test_check_config_applies_the_rule_and_accepts_insecure(capsys):
    code, rows, _, err = check(capsys, "--host", "0.0.0.0")
    assert code == 2
    assert err == ["trialplane: refusing to listen on 0.0.0.0, which is not a loopback address, without TLS: "
                   "give --tls-cert and --tls-key, or pass --insecure to serve it anyway"]
    code, rows, last, err = check(capsys, "--host", "0.0.0.0", "--insecure", "--no-auth")
    assert (code, err) == (0, [])
    assert rows["insecure"] == ("true", "--insecure")
    assert last == "configuration ok: 0.0.0.0:50051, plaintext, auth off, --insecure"


def test_build_server_refuses_before_binding_or_opening_the_database(tmp_path):
    import asyncio

    from trialplane.server.app import build_server
    from trialplane.server.config import ConfigError

    db = tmp_path / "never.db"
    with pytest.raises(ConfigError, match="refusing to listen on 0.0.0.0"):
        asyncio.run(build_server(ServerConfig(host="0.0.0.0", port=0, db_path=str(db))))
    assert not db.exists()


# --- JSON log lines ------------------------------------------------------------------------------------------------


def test_json_log_lines_parse_with_their_extra_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("trialplane.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("trial %d stopped", 7, extra={"trial_id": 7, "why": {"by": "user"}, "path": object()})
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "WARNING" and first["logger"] == "trialplane.test.json"
    assert first["message"] == "trial 7 stopped"
    assert first["trial_id"] == 7 and first["why"] == {"by": "user"} and first["path"].startswith("<object")
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert set(first) == {"time", "level", "logger", "message", "trial_id", "why", "path"}
    assert second["message"] == "failed" and "RuntimeError: boom\nsecond line" in second["exception"]


def test_serve_help_names_each_variable(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for text in ["$TRIALPLANE_PORT", "$TRIALPLANE_TLS_CERT", "$TRIALPLANE_NO_AUTH=1", "--config PATH", "--check-config",
                 "--log-format {text,json}", "default: 50051"]:
        assert text in out, text


def test_a_flag_added_by_hand_is_read_from_the_environment_and_the_file_too(tmp_path):
    import argparse

    from trialplane.server.cli import _finish_settings

    parser = argparse.ArgumentParser()
    parser.add_argument("--grace", dest="shutdown_grace", type=float, default=3.0, help="seconds")
    _finish_settings(parser)
    assert "$TRIALPLANE_GRACE" in parser.format_help()
    resolved = settings.resolve(parser, parser.parse_args([]), {"TRIALPLANE_GRACE": "4"})
    assert (resolved.config.shutdown_grace, resolved.sources["shutdown_grace"]) == (4.0, "$TRIALPLANE_GRACE")
    path = tmp_path / "serve.yaml"
    path.write_text("grace: 5\n")
    resolved = settings.resolve(parser, argparse.Namespace(config_file=str(path)), {})
    assert (resolved.config.shutdown_grace, resolved.sources["shutdown_grace"]) == (5.0, str(path))
    resolved = settings.resolve(parser, parser.parse_args(["--grace", "6"]), {"TRIALPLANE_GRACE": "4"})
    assert resolved.config.shutdown_grace == 6.0
