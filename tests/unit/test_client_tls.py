"""The clients' TLS settings: what the SDK reads from the environment and
what the agent hands to the training it starts."""

from __future__ import annotations

import pytest
from trialplane.client import TLS
from trialplane.client.agent.environment import child_environment
from trialplane.client.sdk.channel import resolve_tls


def test_tls_from_arguments_and_the_environment():
    env = {"TRIALPLANE_TLS_CA": "ca.pem", "TRIALPLANE_TLS_CERT": "c.pem", "TRIALPLANE_TLS_KEY": "k.pem"}
    assert TLS.from_environment(env={}) is None
    assert TLS.from_environment(env={"TRIALPLANE_TLS": "1"}) == TLS()
    assert TLS.from_environment(env={"TRIALPLANE_TLS": "0"}) is None
    assert TLS.from_environment(on=True, env={}) == TLS()
    assert TLS.from_environment(env=env) == TLS("ca.pem", "c.pem", "k.pem")
    # What is given wins over its variable, one by one.
    assert TLS.from_environment(ca="mine.pem", env=env) == TLS("mine.pem", "c.pem", "k.pem")
    with pytest.raises(ValueError, match="TLS client key needs its cert too"):
        TLS.from_environment(env={"TRIALPLANE_TLS_KEY": "k.pem"})


def test_what_the_client_argument_means(monkeypatch):
    monkeypatch.setenv("TRIALPLANE_TLS_CA", "env-ca.pem")
    assert resolve_tls(None) == TLS(ca="env-ca.pem")
    assert resolve_tls(False) is None
    assert resolve_tls(True) == TLS()
    assert resolve_tls("roots.pem") == TLS(ca="roots.pem")
    given = TLS(ca="a.pem", cert="b.pem", key="c.pem", server_name="tp.internal")
    assert resolve_tls(given) is given


def test_the_agent_hands_its_tls_to_the_training(tmp_path, monkeypatch):
    base = {"PATH": "/bin", "TRIALPLANE_TLS_KEY": "stale.key", "TRIALPLANE_TLS_CERT": "stale.pem"}
    monkeypatch.chdir(tmp_path)
    env = child_environment(base, address="127.0.0.1:1", token=None, trial_id=3, trial_run_id=1,
                            tls=TLS(ca="ca.pem"))
    assert env["TRIALPLANE_TLS"] == "1"
    assert env["TRIALPLANE_TLS_CA"] == str(tmp_path / "ca.pem")
    # A client certificate the agent does not use is not handed on.
    assert "TRIALPLANE_TLS_CERT" not in env and "TRIALPLANE_TLS_KEY" not in env
    mutual = child_environment(base, address="127.0.0.1:1", token=None, trial_id=3, trial_run_id=1,
                               tls=TLS(ca="/etc/ca.pem", cert="/etc/c.pem", key="/etc/k.pem"))
    assert (mutual["TRIALPLANE_TLS_CA"], mutual["TRIALPLANE_TLS_CERT"], mutual["TRIALPLANE_TLS_KEY"]) == (
        "/etc/ca.pem", "/etc/c.pem", "/etc/k.pem")
    plain = child_environment(base, address="127.0.0.1:1", token=None, trial_id=3, trial_run_id=1)
    assert "TRIALPLANE_TLS" not in plain and plain["TRIALPLANE_TLS_KEY"] == "stale.key"
