"""Real servers for tests: in this process on its own event loop thread, or as
a `trialplane serve` process, each on a free port."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from trialplane.server.app import App, build_server
from trialplane.server.config import ServerConfig
from trialplane.server.storage.factory import open_storage

from .postgres import database_url

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or pytest.fail(f"{name} is not installed"))



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
        self.call(_cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _cancel_leftovers() -> None:
    """Cancels and awaits what the stopped server left on its loop (the
    tasks of streams gRPC cut), as asyncio.run does: closing the loop with
    them pending would have them destroyed later, mid-way through another
    test, with a traceback on its stderr."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=5)


class FakeClock:
    """Real time plus an offset the test moves forward."""

    def __init__(self):
        self.offset_us = 0

    def __call__(self) -> int:
        return time.time_ns() // 1000 + self.offset_us

    def advance(self, seconds: float) -> None:
        self.offset_us += int(seconds * 1_000_000)


def start_server(db_path, clock=None, port: int = 0, **overrides) -> ServerThread:
    """port 0 is a free one; a test that restarts a server passes the port it had.
    Auth is off unless a test turns it on (auth=True)."""
    url = database_url(db_path)
    overrides.setdefault("auth", False)
    overrides.setdefault("admin_token_file", str(Path(str(db_path)).with_suffix(".admin-token")))
    config = ServerConfig(port=port, db_path=url, watchdog_interval=0, retention_interval=0, **overrides)
    storage = open_storage(url, clock=clock) if clock is not None else None
    return ServerThread(config, storage).start()


class ServerProcess:
    """`trialplane serve` with extra flags; auth is off unless asked for."""

    def __init__(self, db_path, *extra, auth: bool = False):
        self.proc = subprocess.Popen(
            [tool("trialplane"), "serve", "--port", "0", "--db", database_url(db_path), "--shutdown-grace", "5",
             *([] if auth else ["--no-auth"]), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            self.proc.kill()
            raise AssertionError(f"server did not start: {line!r} {self.proc.stderr.read()}")
        self.address = line.strip().rsplit(" ", 1)[1]

    def terminate(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err
