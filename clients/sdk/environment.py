"""The environment a training process is started with, shared by the agent
that starts it and the SDK inside it.

`trialplane agent` runs the training command with these variables set;
`trialplane.client.init()` reads them, so a script calls init() with no
arguments and reports to the right trial and run:

    TRIALPLANE_ADDRESS       the server, host:port (also read by Client)
    TRIALPLANE_TOKEN         the bearer token, when the server wants one (also read by Client);
                             from an agent, a trial-run token good for this run only
    TRIALPLANE_TLS_CA        PEM root certificates to check the server's with: TLS on
    TRIALPLANE_TLS_CERT      PEM client certificate, for a server that asks for one (mutual TLS)
    TRIALPLANE_TLS_KEY       its PEM private key
    TRIALPLANE_TLS           "1": TLS with the system's root certificates (when no CA file is named)
    TRIALPLANE_TRIAL_ID      the trial the process trains
    TRIALPLANE_TRIAL_RUN_ID  the run of that trial the process belongs to
    TRIALPLANE_JOURNAL_DIR   where metric journals live (optional; default_journal_dir())
    TRIALPLANE_AGENT         "1" when an agent reports the trial's state, so the
                             SDK reports no RUNNING, COMPLETED or ERROR itself

The agent builds the training's environment from these names
(clients/agent/environment.py). An agent that reports a run finished should
first send what the process left in its journals (a process killed by
SIGKILL leaves points unsent, and a finished trial takes no more):
`trialplane.client.sync_journals(journal_dir(), trial_id=..., trial_run_id=...)`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

ADDRESS = "TRIALPLANE_ADDRESS"
TOKEN = "TRIALPLANE_TOKEN"
# A file whose first line is the token; read by Client when TOKEN is unset.
TOKEN_FILE = "TRIALPLANE_TOKEN_FILE"
TRIAL_ID = "TRIALPLANE_TRIAL_ID"
TRIAL_RUN_ID = "TRIALPLANE_TRIAL_RUN_ID"
JOURNAL_DIR = "TRIALPLANE_JOURNAL_DIR"
AGENT = "TRIALPLANE_AGENT"
TLS = "TRIALPLANE_TLS"
TLS_CA = "TRIALPLANE_TLS_CA"
TLS_CERT = "TRIALPLANE_TLS_CERT"
TLS_KEY = "TRIALPLANE_TLS_KEY"


def default_journal_dir() -> Path:
    """$XDG_CACHE_HOME/trialplane/journals, else ~/.cache/trialplane/journals."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "trialplane" / "journals"


def journal_dir(explicit: str | os.PathLike | None = None, env: Mapping[str, str] = os.environ) -> Path:
    """The directory given, else $TRIALPLANE_JOURNAL_DIR, else default_journal_dir()."""
    if explicit is not None:
        return Path(explicit)
    return Path(env[JOURNAL_DIR]) if env.get(JOURNAL_DIR) else default_journal_dir()


def agent_managed(env: Mapping[str, str] = os.environ) -> bool:
    """Whether an agent reports the trial's state ($TRIALPLANE_AGENT=1)."""
    return env.get(AGENT, "").strip() == "1"


def _int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"${name} is {text!r}, not a number") from None
    if value <= 0:
        raise ValueError(f"${name} is {value}; ids are positive")
    return value


def trial_id(env: Mapping[str, str] = os.environ) -> int | None:
    """$TRIALPLANE_TRIAL_ID as a number, None when unset."""
    return _int(env, TRIAL_ID)


def trial_run_id(env: Mapping[str, str] = os.environ) -> int | None:
    """$TRIALPLANE_TRIAL_RUN_ID as a number, None when unset."""
    return _int(env, TRIAL_RUN_ID)
