"""What asking for tokens costs a unary call.

Two measurements, each the median of --runs runs:

- in process: the auth interceptor's wrapper around a GetTrial behavior that
  returns at once, called directly with a stand-in context, against the same
  behavior unwrapped. The difference is the whole per-call cost of auth
  (header, hash, cache, scope and target checks, binding the principal),
  without the network noise that hides a few microseconds.
- over gRPC: sequential GetTrial calls to `trialplane serve --no-auth`, to a
  server that asks for tokens (an admin token, a token limited to the
  trial's study, the trial's trial-run token), and to the empty-handler
  ceiling, all in the same run.

Usage: .venv/bin/python bench/auth_bench.py [--runs N] [--calls N] [--direct-calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import grpc
from support import Table, start_ceiling, start_trialplane
from trialplane.server.api.auth import AuthInterceptor
from trialplane.server.domain.models import Study, Trial
from trialplane.server.domain.tokens import Token, TokenKind, new_secret
from trialplane.server.services.authority import Authority
from trialplane.server.services.change_feed import ChangeFeed
from trialplane.server.storage.factory import open_storage
from trialplane.v1 import (
    study_pb2,
    study_service_pb2_grpc,
    token_pb2,
    token_service_pb2_grpc,
    trial_pb2,
    trial_service_pb2_grpc,
)
from trialplane.v1 import study_service_pb2 as ss
from trialplane.v1 import token_service_pb2 as tk
from trialplane.v1 import trial_service_pb2 as ts

GET = "/trialplane.v1.TrialService/GetTrial"
TARGET_US = 15.0


# --- in process -------------------------------------------------------------------------------


class _Context:
    """What the wrapper reads of a servicer context."""

    def __init__(self, secret: str):
        self._metadata = (("user-agent", "bench"), ("authorization", f"Bearer {secret}"))

    def invocation_metadata(self):
        return self._metadata


async def _direct(calls: int, db: str) -> dict[str, float]:
    storage = open_storage(db)
    await storage.open()
    try:
        feed = ChangeFeed()
        authority = Authority(storage, feed, storage.clock)
        study = await storage.create_study(Study(name="bench"))
        trial = await storage.create_trial(Trial(name="t", study_id=study.id), None, lambda s: None)
        secrets = {}
        for key, token in {
            "admin": Token(name="admin", kind=TokenKind.USER, scopes=frozenset({"admin"})),
            "study": Token(name="s", kind=TokenKind.USER, scopes=frozenset({"read"}), study_ids=frozenset({study.id})),
            "run": Token(name="r", kind=TokenKind.TRIAL_RUN, trial_id=trial.id, trial_run_id=trial.trial_run_id),
        }.items():
            secrets[key], token.secret_hash = new_secret()
            token.create_time = storage.clock()
            await storage.create_token(token)

        async def behavior(request, context):
            return b""

        handler = grpc.unary_unary_rpc_method_handler(behavior)
        interceptor = AuthInterceptor(authority)
        wrapped = interceptor.wrap(GET, handler).unary_unary
        request = ts.GetTrialRequest(id=trial.id)

        async def per_call(fn, context) -> float:
            for _ in range(200):
                await fn(request, context)
            began = time.perf_counter()
            for _ in range(calls):
                await fn(request, context)
            return (time.perf_counter() - began) / calls * 1e6

        out = {"bare": await per_call(behavior, _Context(secrets["admin"]))}
        for key, secret in secrets.items():
            out[key] = await per_call(wrapped, _Context(secret))
        return out
    finally:
        await storage.close()


# --- over gRPC ---------------------------------------------------------------------------------


def _sequential_us(address: str, secret: str | None, trial_id: int, calls: int) -> float:
    metadata = [("authorization", f"Bearer {secret}")] if secret else None
    with grpc.insecure_channel(address) as channel:
        get = channel.unary_unary(GET, request_serializer=ts.GetTrialRequest.SerializeToString,
                                  response_deserializer=trial_pb2.Trial.FromString)
        request = ts.GetTrialRequest(id=trial_id)
        for _ in range(100):
            get(request, metadata=metadata, timeout=10)
        began = time.perf_counter()
        for _ in range(calls):
            get(request, metadata=metadata, timeout=10)
        return (time.perf_counter() - began) / calls * 1e6


def _secured_world(address: str, admin_secret: str) -> tuple[int, dict[str, str]]:
    md = [("authorization", f"Bearer {admin_secret}")]
    with grpc.insecure_channel(address) as channel:
        studies = study_service_pb2_grpc.StudyServiceStub(channel)
        trials = trial_service_pb2_grpc.TrialServiceStub(channel)
        tokens = token_service_pb2_grpc.TokenServiceStub(channel)
        study = studies.CreateStudy(ss.CreateStudyRequest(study=study_pb2.Study(
            name="bench", objective=study_pb2.Objective(metric_name="loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE))),
            metadata=md)
        trial = trials.CreateTrial(ts.CreateTrialRequest(trial=trial_pb2.Trial(name="t", study_id=study.id)), metadata=md)
        limited = tokens.CreateToken(tk.CreateTokenRequest(token=token_pb2.Token(
            name="s", kind=token_pb2.TOKEN_KIND_USER, scopes=["read"], study_ids=[study.id])), metadata=md)
        run = tokens.CreateTrialRunToken(tk.CreateTrialRunTokenRequest(trial_id=trial.id), metadata=md)
        return trial.id, {"admin": admin_secret, "study": limited.secret, "run": run.secret}


def _open_world(address: str) -> int:
    with grpc.insecure_channel(address) as channel:
        return trial_service_pb2_grpc.TrialServiceStub(channel).CreateTrial(
            ts.CreateTrialRequest(trial=trial_pb2.Trial(name="t"))).id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=2000, help="sequential GetTrial calls per server and run")
    parser.add_argument("--direct-calls", type=int, default=50_000, help="in-process calls per variant and run")
    args = parser.parse_args()

    table = Table()
    table.define("direct-admin", "in process: wrapper, admin token", "us", "GetTrial behavior that returns at once")
    table.define("direct-bare", "in process: the same behavior unwrapped", "us", "the floor of the two")
    table.define("cost-admin", "auth cost per call, admin token", "us", f"wrapped - unwrapped; target <= {TARGET_US:g}")
    table.define("cost-study", "auth cost per call, study-limited token", "us", "the trial's study from a cache")
    table.define("cost-run", "auth cost per call, trial-run token", "us", "the trial's run from a cache")
    table.define("grpc-admin", "over gRPC: GetTrial, auth on, admin token", "us", "sequential calls, one channel")
    table.define("grpc-ceiling", "empty-handler ceiling", "us", ceiling_of="grpc-admin",
                 ratio="trialplane's latency as % of the ceiling's")
    table.define("grpc-open", "over gRPC: GetTrial, --no-auth", "us")
    table.define("grpc-study", "over gRPC: GetTrial, study-limited token", "us")
    table.define("grpc-run", "over gRPC: GetTrial, trial-run token", "us")
    table.define("grpc-diff", "auth on - auth off, over gRPC", "us", "within the noise of one run")

    with tempfile.TemporaryDirectory(prefix="auth-bench-") as tmp:
        for run in range(args.runs):
            direct = asyncio.run(_direct(args.direct_calls, str(Path(tmp) / f"direct-{run}.db")))
            table.add("direct-admin", direct["admin"])
            table.add("direct-bare", direct["bare"])
            for key in ("admin", "study", "run"):
                table.add(f"cost-{key}", direct[key] - direct["bare"])

            token_file = Path(tmp) / f"admin-{run}.token"
            secured = start_trialplane(Path(tmp) / f"secured-{run}.db", auth=True,
                                       args=["--admin-token-file", str(token_file), "--log-level", "WARNING"])
            open_server = start_trialplane(Path(tmp) / f"open-{run}.db", args=["--log-level", "WARNING"])
            ceiling = start_ceiling("TrialService")
            try:
                trial_id, secrets = _secured_world(secured.address, token_file.read_text().strip())
                open_trial = _open_world(open_server.address)
                table.add("grpc-ceiling", _sequential_us(ceiling.address, None, 1, args.calls))
                table.add("grpc-open", _sequential_us(open_server.address, None, open_trial, args.calls))
                for key in ("admin", "study", "run"):
                    table.add(f"grpc-{key}", _sequential_us(secured.address, secrets[key], trial_id, args.calls))
                table.add("grpc-diff", table.last("grpc-admin") - table.last("grpc-open"))
            finally:
                for server in (secured, open_server, ceiling):
                    server.stop()
    table.print()
    print(f"\n{args.runs} runs; reproduce with: .venv/bin/python bench/auth_bench.py --runs {args.runs}"
          f" --calls {args.calls} --direct-calls {args.direct_calls}")


if __name__ == "__main__":
    main()
