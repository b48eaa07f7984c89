"""The transport ceiling for bench/trials_bench.py: a grpc.aio server whose handlers for
/trialplane.v1.TrialService/CreateTrial and /GetTrial do nothing but return an
empty Trial. Same method paths, same (de)serializers and server options as
trialplane, no database and no domain code.

Usage: .venv/bin/python bench/trials_ceiling_server.py [--host 127.0.0.1] [--port 0]
Prints "ceiling listening on HOST:PORT" once bound; SIGTERM or SIGINT stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc
from trialplane.v1 import trial_pb2, trial_service_pb2

SERVICE = "trialplane.v1.TrialService"


async def empty_trial(request, context) -> trial_pb2.Trial:
    return trial_pb2.Trial()


def handler() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "CreateTrial": grpc.unary_unary_rpc_method_handler(
                empty_trial,
                request_deserializer=trial_service_pb2.CreateTrialRequest.FromString,
                response_serializer=trial_pb2.Trial.SerializeToString,
            ),
            "GetTrial": grpc.unary_unary_rpc_method_handler(
                empty_trial,
                request_deserializer=trial_service_pb2.GetTrialRequest.FromString,
                response_serializer=trial_pb2.Trial.SerializeToString,
            ),
        },
    )


async def serve(host: str, port: int) -> None:
    # The options trialplane's build_server sets, so only the handlers differ.
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((handler(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    await server.start()
    print(f"ceiling listening on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
