"""The environment the agent hands to the training command, and the rank it
reads from the launcher's.

These variables are the whole contract between the agent and the SDK's trial
handle (`trialplane.client.init()` reads them): where the server is, which
trial and run the process works for, and that the agent, not the script,
reports the trial's state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# The names are the SDK's (clients/sdk/environment.py), which reads them.
from ..sdk.channel import TLS
from ..sdk.environment import (
    ADDRESS,
    AGENT,
    JOURNAL_DIR,
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
    TOKEN,
    TOKEN_FILE,
    TRIAL_ID,
    TRIAL_RUN_ID,
)

__all__ = ["ADDRESS", "AGENT", "JOURNAL_DIR", "RANK_VARIABLES", "TOKEN", "TRIAL_ID", "TRIAL_RUN_ID",
           "child_environment", "rank_from"]

# Where launchers put a process's rank, in the order they are trusted:
# torchrun and most others, Open MPI, Slurm, then the local rank.
RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID", "LOCAL_RANK")


def rank_from(environ: Mapping[str, str] | None = None) -> int:
    """The first of RANK_VARIABLES that holds a whole number 0 or more, else 0."""
    environ = os.environ if environ is None else environ
    for name in RANK_VARIABLES:
        value = environ.get(name, "").strip()
        if value.isdigit():
            return int(value)
    return 0


def child_environment(
    base: Mapping[str, str],
    *,
    address: str,
    token: str | None,
    trial_id: int,
    trial_run_id: int,
    tls: TLS | None = None,
    journal_dir: str | None = None,
    trial_environment: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The training command's environment: the agent's own, then the trial's
    `environment` map, then the trialplane variables (which win): with tls,
    the TLS files the agent uses, so the training's SDK speaks TLS as it does.

    PYTHONUNBUFFERED is set unless given: a Python child writing into a pipe
    would otherwise hold its output back in 8 KiB blocks, and lines would
    reach the terminal and the server late and out of step with stderr."""
    env = dict(base)
    env.update(trial_environment or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    env[ADDRESS] = address
    env[TRIAL_ID] = str(trial_id)
    env[TRIAL_RUN_ID] = str(trial_run_id)
    env[AGENT] = "1"
    # The token handed over is the child's only credential: not the agent's
    # token file, nor a token of its own from the agent's environment.
    env.pop(TOKEN_FILE, None)
    env.pop(TOKEN, None)
    if token:
        env[TOKEN] = token
    if tls is not None:
        for name in (TLS_CA, TLS_CERT, TLS_KEY):
            env.pop(name, None)
        env.update(tls.environment())
    if journal_dir:
        env[JOURNAL_DIR] = journal_dir
    return env
