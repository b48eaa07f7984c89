"""The training command as a child process.

The child runs in a process group of its own (a new session), so a stop
reaches everything it started (data loader workers, launchers) and the
agent's own terminal signals do not. Its file descriptors 1 and 2 are pipes
the agent reads, so whatever writes to them is caught, Python, C or CUDA
alike. One thread reads both pipes, writes every chunk unchanged to the
agent's own fd 1 or 2 first, and only then splits it into lines for the
shipper, which never blocks: the child runs as fast as the agent's own
output takes it, whatever the server does.

Exit is seen with waitid(WNOWAIT), so the child stays a zombie until the
agent has killed what is left of its group: the group id cannot be reused by
an unrelated process in between.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import subprocess
import threading
from collections.abc import Callable

from .lines import LineSplitter

STREAMS = (("stdout", 1), ("stderr", 2))


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name}"
    return f"exit code {returncode}"


def exit_status(returncode: int) -> int:
    """The shell's convention: a child killed by signal N exits 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _write_all(fd: int, data: bytes) -> bool:
    """Writes data to fd; False when fd cannot take output any more."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except OSError as err:
            if err.errno == errno.EINTR:
                continue
            return False
        view = view[written:]
    return True


class Child:
    """One run of the command. on_line(stream, text) gets every line, in the
    order the pipes were read; it must not block."""

    def __init__(self, argv: list[str], env: dict[str, str], on_line: Callable[[str, str], None],
                 wake: threading.Event, passthrough: bool = True):
        self.argv, self.env, self.on_line, self.wake = argv, env, on_line, wake
        self.passthrough = passthrough
        self.splitters = {name: LineSplitter() for name, _ in STREAMS}
        self.exited = threading.Event()
        self.returncode: int | None = None
        self._proc: subprocess.Popen | None = None
        self._abandon = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self) -> None:
        """Starts the command; OSError (FileNotFoundError, PermissionError)
        when it cannot be executed."""
        self._proc = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
            start_new_session=True, close_fds=True,
        )
        pipes = {self._proc.stdout.fileno(): "stdout", self._proc.stderr.fileno(): "stderr"}  # type: ignore[union-attr]
        self._reader = threading.Thread(target=self._read, args=(pipes,), name="trialplane-output", daemon=True)
        self._reader.start()
        threading.Thread(target=self._await_exit, name="trialplane-child", daemon=True).start()

    def signal(self, sig: int) -> None:
        """Sends sig to the child's whole process group."""
        if self._proc is None or self.returncode is not None:
            return
        try:
            os.killpg(self._proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def finish(self, drain_timeout: float = 2.0) -> int:
        """Once the child exited: kills what is left of its group, reaps it,
        and waits up to drain_timeout for the rest of its output (a process
        that left the group may hold the pipes open). Returns the
        returncode (negative: killed by that signal)."""
        assert self._proc is not None
        self.exited.wait()
        self.signal(signal.SIGKILL)
        self.returncode = self._proc.wait()
        if self._reader is not None:
            self._reader.join(drain_timeout)
            if self._reader.is_alive():
                self._abandon.set()
                self._reader.join(1.0)
        for name, splitter in self.splitters.items():
            for line in splitter.flush():
                self.on_line(name, line)
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()
        return self.returncode

    def pending_text(self) -> list[tuple[str, str]]:
        """The unfinished line of each stream, if any."""
        return [(name, s.pending()) for name, s in self.splitters.items() if s.pending()]

    def _await_exit(self) -> None:
        assert self._proc is not None
        try:
            os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            pass
        self.exited.set()
        self.wake.set()

    def _read(self, pipes: dict[int, str]) -> None:
        out_fd = dict(STREAMS)
        passthrough = dict.fromkeys(out_fd, self.passthrough)
        selector = selectors.DefaultSelector()
        for fd, name in pipes.items():
            selector.register(fd, selectors.EVENT_READ, name)
        while selector.get_map() and not self._abandon.is_set():
            for key, _ in selector.select(timeout=0.5):
                name = key.data
                try:
                    data = os.read(key.fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(key.fd)
                    continue
                if passthrough[name]:
                    passthrough[name] = _write_all(out_fd[name], data)
                for line in self.splitters[name].feed(data):
                    self.on_line(name, line)
        selector.close()
