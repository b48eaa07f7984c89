"""Fixtures: a real trialplane server on a free port, and stubs to call it."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from trialplane.server.app import App, build_server
from trialplane.server.config import ServerConfig
from trialplane.server.storage.sqlite.store import SqliteStorage
from trialplane.v1 import (
    study_pb2,
    study_service_pb2,
    study_service_pb2_grpc,
    trial_service_pb2_grpc,
    worker_service_pb2_grpc,
)


class ServerThread:
    """Runs an App on its own event loop thread so tests can use blocking stubs."""

    def __init__(self, config: ServerConfig, storage=None):
        self.config = config
        self.storage = storage
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.app: App | None = None

    def call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> ServerThread:
        self.thread.start()

        async def boot():
            app = await build_server(self.config, self.storage)
            await app.start()
            return app

        self.app = self.call(boot())
        return self

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.app.port}"

    def stop(self, grace: float = 1.0) -> None:
        if self.app is not None:
            self.call(self.app.stop(grace))
            self.app = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Client:
    channel: grpc.Channel
    studies: study_service_pb2_grpc.StudyServiceStub
    trials: trial_service_pb2_grpc.TrialServiceStub
    workers: worker_service_pb2_grpc.WorkerServiceStub

    @classmethod
    def connect(cls, address: str) -> Client:
        channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(channel).result(timeout=10)
        return cls(
            channel,
            study_service_pb2_grpc.StudyServiceStub(channel),
            trial_service_pb2_grpc.TrialServiceStub(channel),
            worker_service_pb2_grpc.WorkerServiceStub(channel),
        )


class FakeClock:
    """Real time plus an offset the test moves forward."""

    def __init__(self):
        self.offset_us = 0

    def __call__(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def advance(self, seconds: float) -> None:
        self.offset_us += int(seconds * 1_000_000)


def start_server(db_path, clock=None, **overrides) -> ServerThread:
    config = ServerConfig(port=0, db_path=str(db_path), watchdog_interval=0, retention_interval=0, **overrides)
    storage = SqliteStorage(str(db_path), clock=clock) if clock is not None else None
    return ServerThread(config, storage).start()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "trialplane.db"


@pytest.fixture
def server(db_path):
    srv = start_server(db_path)
    yield srv
    srv.stop()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def clocked_server(db_path, clock):
    srv = start_server(db_path, clock=clock)
    yield srv
    srv.stop()


@pytest.fixture
def clocked_client(clocked_server):
    c = Client.connect(clocked_server.address)
    yield c
    c.channel.close()


@pytest.fixture
def client(server):
    c = Client.connect(server.address)
    yield c
    c.channel.close()


@dataclass
class ErrorDetails:
    code: grpc.StatusCode
    message: str
    reason: str
    metadata: dict
    violations: dict
    # Every other detail of the status, as packed Any messages.
    details: list

    def detail(self, message_type):
        """The detail of that type, unpacked, or None."""
        for packed in self.details:
            if packed.Is(message_type.DESCRIPTOR):
                out = message_type()
                packed.Unpack(out)
                return out
        return None


def error_of(call_fn, *args, **kwargs) -> ErrorDetails:
    """Calls a stub method that must fail and returns its decoded status."""
    with pytest.raises(grpc.RpcError) as info:
        call_fn(*args, **kwargs)
    err = info.value
    status = rpc_status.from_call(err)
    reason, metadata, violations, others = "", {}, {}, []
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                ei = error_details_pb2.ErrorInfo()
                detail.Unpack(ei)
                reason, metadata = ei.reason, dict(ei.metadata)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                br = error_details_pb2.BadRequest()
                detail.Unpack(br)
                violations = {v.field: v.description for v in br.field_violations}
            else:
                others.append(detail)
    return ErrorDetails(err.code(), err.details(), reason, metadata, violations, others)


def make_study(name="study-a", **kwargs) -> study_pb2.Study:
    study = study_pb2.Study(
        name=name,
        objective=study_pb2.Objective(metric_name="val_loss", type=study_pb2.OBJECTIVE_TYPE_MINIMIZE),
        parameters=[
            study_pb2.ParameterSpec(
                name="lr",
                type=study_pb2.PARAMETER_TYPE_DOUBLE,
                feasible_space=study_pb2.FeasibleSpace(min=1e-4, max=0.1),
                scale=study_pb2.PARAMETER_SCALE_LOG,
            ),
            study_pb2.ParameterSpec(
                name="layers",
                type=study_pb2.PARAMETER_TYPE_INT,
                feasible_space=study_pb2.FeasibleSpace(min=1, max=8),
            ),
            study_pb2.ParameterSpec(
                name="optimizer",
                type=study_pb2.PARAMETER_TYPE_CATEGORICAL,
                feasible_space=study_pb2.FeasibleSpace(categories=["sgd", "adam"]),
            ),
        ],
    )
    for key, value in kwargs.items():
        if isinstance(value, list):
            getattr(study, key).extend(value)
        elif hasattr(value, "DESCRIPTOR"):
            getattr(study, key).CopyFrom(value)
        else:
            setattr(study, key, value)
    return study


def create_study(client: Client, name="study-a", **kwargs) -> study_pb2.Study:
    return client.studies.CreateStudy(study_service_pb2.CreateStudyRequest(study=make_study(name, **kwargs)))
