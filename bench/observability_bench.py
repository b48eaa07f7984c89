"""Cost per unary call of the call-metrics interceptor and the stream limits.

Usage: .venv/bin/python bench/observability_bench.py [--runs N]

Two measurements, each beside its ceiling from the same run:

* in process: the interceptor chain the server builds (CallMetrics, then
  StreamLimits) around an empty unary behavior, driven CALLS times on one
  event loop with a stand-in context (intercept_service and the wrapped
  behavior, as gRPC calls them); ceiling: the same loop calling the empty
  behavior through a bare continuation. Their difference is what the
  interceptors add to a call, without the transport's noise.
* through a server: unary calls/s from one client to a grpc.aio server
  process with the same interceptors in front of an empty handler; ceiling:
  the same server without interceptors. A third server has one interceptor
  that does nothing, for what gRPC's own interceptor path costs. Each run
  starts the three in turn (the order rotating from run to run) and sends
  each WINDOW seconds of calls.

The server processes are this script with --serve (no interceptors, the
no-op one, or the chain); each is stopped by its own PID. The whole bench takes about 35 s.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import grpc
from support import ServerProcess, Table, median, serve_until_signalled

CALLS = 100_000
WINDOW = 1.5
METHOD = "/bench.Empty/Call"


async def _empty(request, context):
    return b""


def _handler() -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(_empty)


class _Noop(grpc.aio.ServerInterceptor):
    async def intercept_service(self, continuation, handler_call_details):
        return await continuation(handler_call_details)


def _chain() -> list:
    from trialplane.server.api.limits import StreamLimits
    from trialplane.server.api.observability import Observability

    return [Observability().interceptor, StreamLimits(64, 2.0, 3600.0)]


class _Details:
    method = METHOD
    invocation_metadata = ()


class _Context:
    """What the interceptors ask of a call's context."""

    def code(self):
        return None

    def peer(self):
        return "ipv4:127.0.0.1:5000"


async def _in_process(chain: list) -> float:
    """Microseconds per call of CALLS calls through chain (empty: the bare continuation)."""
    handler = _handler()

    async def bare(details):
        return handler

    continuation = bare
    for interceptor in reversed(chain):
        continuation = _bind(interceptor, continuation)
    details, context = _Details(), _Context()
    start = time.perf_counter()
    for _ in range(CALLS):
        served = await continuation(details)
        await served.unary_unary(b"", context)
    return (time.perf_counter() - start) / CALLS * 1e6


def _bind(interceptor, continuation):
    async def call(details):
        return await interceptor.intercept_service(continuation, details)

    return call


async def _serve(kind: str) -> None:

    class Table_(grpc.GenericRpcHandler):
        def service(self, details):
            return _handler() if details.method == METHOD else None

    interceptors = {"none": None, "noop": [_Noop()], "chain": _chain()}[kind]
    server = grpc.aio.server(interceptors=interceptors)
    server.add_generic_rpc_handlers((Table_(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await serve_until_signalled(server, "bench", f"127.0.0.1:{port}", grace=0.5)


def _rate(address: str) -> float:
    """Unary calls/s from one client over WINDOW seconds."""
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        call = channel.unary_unary(METHOD)
        for _ in range(200):
            call(b"")
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < WINDOW:
            for _ in range(100):
                call(b"")
            count += 100
        return count / elapsed


SERVERS = ("none", "noop", "chain")


def _server(kind: str) -> ServerProcess:
    argv = [sys.executable, __file__, "--serve", kind]
    process = ServerProcess(argv, "bench listening on")
    process.wait_listening()
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return
    table = Table()
    table.define("chain", "metrics + limits interceptors, in process", "us/call", f"{CALLS:,} calls, one loop")
    table.define("bare", "empty behavior, in process", "us/call", "same loop, no interceptors", ceiling_of="chain",
                 ratio="as % of the empty behavior")
    table.define("served", "unary calls, server with metrics + limits", "calls/s", "one client, sequential")
    table.define("plain", "unary calls, same server without interceptors", "calls/s", "same run", ceiling_of="served")
    table.define("noop", "unary calls, same server with a no-op interceptor", "calls/s", "gRPC's interceptor path")
    added: list[float] = []
    for run in range(args.runs):
        bare = asyncio.run(_in_process([]))
        chain = asyncio.run(_in_process(_chain()))
        table.add("bare", bare)
        table.add("chain", chain)
        added.append(chain - bare)
        rates = {}
        for kind in SERVERS[run % 3:] + SERVERS[:run % 3]:
            process = _server(kind)
            try:
                rates[kind] = _rate(process.address)
            finally:
                process.stop()
        table.add("served", rates["chain"])
        table.add("plain", rates["none"])
        table.add("noop", rates["noop"])
    table.print()
    print(f"\nadded per call in process: median {median(added):.2f} us over {args.runs} runs")


if __name__ == "__main__":
    main()
