"""System metrics of the training: its process tree (psutil) and the GPUs
(nvidia-ml-py, when it is installed and NVML finds a device).

Two threads, so that neither the child nor the sampling ever waits on the
server. The sampler reads, every interval seconds while a run's child is
alive, the summed CPU of the child's process tree (cpu_util, in percent of
one core: 200 is two cores busy) and its summed resident memory
(memory_rss_bytes); the host's disk and network throughput since the reading
before (disk_read_bytes_per_second, disk_write_bytes_per_second,
net_sent_bytes_per_second, net_recv_bytes_per_second: psutil's counters of
every disk and interface, loopback included, as rates); and per GPU
gpu_util (percent), gpu_memory_used (bytes), gpu_power_watts and
gpu_temperature_celsius, labelled with the GPU's uuid (a reading the GPU
does not support is left out, the others still sent). It appends them to one in-memory
column per series. The sender cuts those columns every ship_interval seconds
into one ReportProfilerMetrics call per series (metric type SYSTEM, agent_id
the agent's host and rank), each under a request_id fixed when the chunk was
cut, so a retry after a lost answer stores it once. While the server does not
answer, chunks wait and new samples queue behind them; past max_samples per
series (by default an hour at 1 Hz) the oldest are dropped and counted, and
the count is logged.

The batch of a sample is its index in the run (0 for the first reading): the
agent does not know the training's step.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import partial

import psutil
from trialplane.v1 import profiler_pb2, profiler_service_pb2

from ..sdk import Client, TrialplaneError
from .calls import Backoff, GaveUp, Link, retrying

log = logging.getLogger("trialplane.agent")

DEFAULT_INTERVAL = 1.0
SHIP_INTERVAL = 5.0
DEFAULT_MAX_SAMPLES = 3600
CALL_TIMEOUT = 5.0


@dataclass(frozen=True)
class Series:
    name: str
    gpu_uuid: str = ""


@dataclass
class _Column:
    values: deque = field(default_factory=deque)  # (value, batch, timestamp_us)


class Rates:
    """Per-second rates of counters that only grow (bytes read, bytes sent).

    The first update is the baseline and gives no rate. A counter that went
    down since the update before (reset, or a disk or interface gone) gives
    no rate that time, and counts from its new value on."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, float]] | None = None

    def update(self, now: float, counters: dict[str, float]) -> dict[str, float]:
        """now: monotonic seconds; counters: name -> value. Returns name -> per second."""
        previous, self._last = self._last, (now, dict(counters))
        if previous is None:
            return {}
        then, before = previous
        elapsed = now - then
        if elapsed <= 0:
            return {}
        return {name: (value - before[name]) / elapsed for name, value in counters.items()
                if name in before and value >= before[name]}


def io_counters() -> dict[str, float]:
    """The host's disk and network byte counters by series name (psutil;
    what a host does not have, such as disks in some containers, is left out)."""
    out: dict[str, float] = {}
    try:
        disk = psutil.disk_io_counters()
    except (OSError, RuntimeError):
        disk = None
    if disk is not None:
        out["disk_read_bytes_per_second"] = float(disk.read_bytes)
        out["disk_write_bytes_per_second"] = float(disk.write_bytes)
    try:
        net = psutil.net_io_counters()
    except (OSError, RuntimeError):
        net = None
    if net is not None:
        out["net_sent_bytes_per_second"] = float(net.bytes_sent)
        out["net_recv_bytes_per_second"] = float(net.bytes_recv)
    return out


class HostIo:
    """Disk and network throughput of the host between two readings."""

    def __init__(self, counters=io_counters, clock=time.monotonic):
        self._counters, self._clock = counters, clock
        self._rates = Rates()

    def read(self) -> list[tuple[Series, float]]:
        rates = self._rates.update(self._clock(), self._counters())
        return [(Series(name), value) for name, value in rates.items()]


class _Gpus:
    """NVML's devices, or none: its absence is said once, in one log line."""

    def __init__(self) -> None:
        self.nvml = None
        self.handles: list[tuple[str, object]] = []
        try:
            import pynvml
        except ImportError:
            log.info("nvidia-ml-py is not installed; no GPU metrics")
            return
        try:
            pynvml.nvmlInit()
            for i in range(pynvml.nvmlDeviceGetCount()):
                handle = pynvml.nvmlDeviceGetHandleByIndex(i)
                gpu = pynvml.nvmlDeviceGetUUID(handle)
                self.handles.append((gpu.decode() if isinstance(gpu, bytes) else str(gpu), handle))
        except Exception as err:  # noqa: BLE001 - NVML_ERROR_* of a host without a driver or a GPU
            log.info("no GPU metrics: NVML is not available (%s)", err)
            self.handles = []
            return
        self.nvml = pynvml
        if not self.handles:
            log.info("no GPU metrics: NVML finds no device")

    def read(self) -> list[tuple[Series, float]]:
        if self.nvml is None:
            return []
        out: list[tuple[Series, float]] = []
        for gpu, handle in self.handles:
            try:
                util = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self.nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # noqa: BLE001 - a device that fell off the bus: skip this reading
                continue
            out.append((Series("gpu_util", gpu), float(util.gpu)))
            out.append((Series("gpu_memory_used", gpu), float(memory.used)))
            # Many GPUs report no power draw (NVML_ERROR_NOT_SUPPORTED): that reading alone is left out.
            try:
                out.append((Series("gpu_power_watts", gpu), self.nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))
            except Exception:  # noqa: BLE001 - NVML_ERROR_NOT_SUPPORTED and kin
                pass
            try:
                celsius = self.nvml.nvmlDeviceGetTemperature(handle, self.nvml.NVML_TEMPERATURE_GPU)
                out.append((Series("gpu_temperature_celsius", gpu), float(celsius)))
            except Exception:  # noqa: BLE001 - NVML_ERROR_NOT_SUPPORTED and kin
                pass
        return out

    def close(self) -> None:
        if self.nvml is not None:
            try:
                self.nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass


class ProcessTree:
    """CPU seconds and resident memory of a process and its descendants.

    CPU is counted per process from its creation, so a process born between
    two readings contributes all its time, and the reading after the first is
    exact; what a process used after the last reading before it exited is
    lost."""

    def __init__(self, pid: int):
        self.root = psutil.Process(pid)
        self._procs: dict[tuple[int, float], psutil.Process] = {}
        self._last_cpu: dict[tuple[int, float], float] = {}

    def read(self) -> tuple[float, int] | None:
        """(CPU seconds used since the previous read, summed RSS); None once the root is gone."""
        try:
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return None
        used = 0.0
        rss = 0
        seen: dict[tuple[int, float], float] = {}
        for proc in members:
            try:
                with proc.oneshot():
                    key = (proc.pid, proc.create_time())
                    times = proc.cpu_times()
                    memory = proc.memory_info().rss
            except psutil.Error:
                continue
            total = times.user + times.system
            used += max(0.0, total - self._last_cpu.get(key, 0.0))
            seen[key] = total
            rss += memory
        self._last_cpu = seen
        return used, rss


class SystemMetrics:
    """Samples the process tree of whichever child watch() was given, and
    ships the samples. interval 0 turns it off (every method is a no-op)."""

    def __init__(
        self,
        client: Client,
        link: Link,
        trial_id: int,
        agent_id: str,
        *,
        interval: float = DEFAULT_INTERVAL,
        ship_interval: float = SHIP_INTERVAL,
        max_samples: int = DEFAULT_MAX_SAMPLES,
    ):
        self.client, self.link = client, link
        self.trial_id, self.agent_id = trial_id, agent_id
        self.interval, self.ship_interval = interval, ship_interval
        self.max_samples = max_samples
        self.enabled = interval > 0
        self.sent = 0
        self.dropped = 0
        self._columns: dict[Series, _Column] = {}
        self._in_flight = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._watch_stop: threading.Event | None = None
        self._sampler: threading.Thread | None = None
        self._dropping = False
        self._gpus: _Gpus | None = None
        self._sender: threading.Thread | None = None
        if self.enabled:
            self._sender = threading.Thread(target=self._send_loop, name="trialplane-system-send", daemon=True)
            self._sender.start()

    # --- sampling ----------------------------------------------------------

    def watch(self, pid: int) -> None:
        """Starts sampling the process tree of pid (a run's child)."""
        if not self.enabled:
            return
        self.unwatch()
        if self._gpus is None:
            self._gpus = _Gpus()
        try:
            tree = ProcessTree(pid)
        except psutil.Error as err:
            log.warning("no system metrics for process %d: %s", pid, err)
            return
        stop = threading.Event()
        self._watch_stop = stop
        self._sampler = threading.Thread(target=self._sample_loop, args=(tree, stop), name="trialplane-system",
                                         daemon=True)
        self._sampler.start()

    def unwatch(self) -> None:
        """Stops sampling (the run's child ended); what was sampled is still sent."""
        if self._watch_stop is not None:
            self._watch_stop.set()
        if self._sampler is not None:
            self._sampler.join(5)
        self._watch_stop = self._sampler = None

    def _sample_loop(self, tree: ProcessTree, stop: threading.Event) -> None:
        assert self._gpus is not None
        index = 0
        last = time.monotonic()
        tree.read()  # the baselines: CPU and I/O from here on
        host_io = HostIo()
        host_io.read()
        while not stop.wait(self.interval):
            now = time.monotonic()
            reading = tree.read()
            if reading is None:
                return
            used, rss = reading
            elapsed = max(now - last, 1e-6)
            last = now
            samples = [(Series("cpu_util"), 100.0 * used / elapsed), (Series("memory_rss_bytes"), float(rss))]
            samples += host_io.read()
            samples += self._gpus.read()
            self._record(samples, index, time.time_ns() // 1000)
            index += 1

    def _record(self, samples: list[tuple[Series, float]], batch: int, timestamp_us: int) -> None:
        with self._cond:
            for series, value in samples:
                column = self._columns.setdefault(series, _Column())
                if len(column.values) >= self.max_samples:
                    column.values.popleft()
                    self.dropped += 1
                    if not self._dropping:
                        self._dropping = True
                        log.warning("more than %d system samples per series wait for the server; dropping the oldest",
                                    self.max_samples)
                column.values.append((value, batch, timestamp_us))

    # --- shipping ----------------------------------------------------------

    def pending(self) -> int:
        """Samples not yet stored (queued or in flight)."""
        with self._cond:
            return sum(len(c.values) for c in self._columns.values()) + self._in_flight

    def flush(self, timeout: float) -> bool:
        """Waits up to timeout seconds for what was sampled so far to be stored."""
        if not self.enabled:
            return True
        deadline = time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while any(c.values for c in self._columns.values()) or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
                self._cond.notify_all()
        return True

    def close(self) -> int:
        """Stops sampling and sending; returns how many samples were never stored."""
        self.unwatch()
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._sender is not None:
            self._sender.join(5)
        if self._gpus is not None:
            self._gpus.close()
        if self.dropped:
            log.warning("%d system samples were dropped while the server was unreachable", self.dropped)
        return self.pending()

    def _cut(self) -> list[tuple[Series, list[tuple[float, int, int]]]]:
        chunks = []
        for series, column in self._columns.items():
            if column.values:
                chunks.append((series, list(column.values)))
                column.values.clear()
        return chunks

    def _request(self, series: Series, rows: list[tuple[float, int, int]]):
        values, batches, timestamps = zip(*rows)
        labels = profiler_pb2.TrialProfilerMetricLabels(
            trial_id=self.trial_id, name=series.name, agent_id=self.agent_id, gpu_uuid=series.gpu_uuid,
            metric_type=profiler_pb2.PROFILER_METRIC_TYPE_SYSTEM,
        )
        batch = profiler_pb2.TrialProfilerMetricsBatch(values=values, batches=batches, timestamps=timestamps,
                                                       labels=labels)
        return profiler_service_pb2.ReportProfilerMetricsRequest(batch=batch, request_id=uuid.uuid4().hex)

    def _send_loop(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            with self._cond:
                self._cond.wait(self.ship_interval)
                chunks = self._cut()
                self._in_flight = sum(len(rows) for _, rows in chunks)
            for i, (series, rows) in enumerate(chunks):
                request = self._request(series, rows)
                call = partial(self.client.stubs.profiler.ReportProfilerMetrics, request, timeout=CALL_TIMEOUT)
                try:
                    retrying(call, self.link, stop=self._stop, backoff=backoff)
                    self.sent += len(rows)
                    backoff.reset()
                except (GaveUp, ValueError):
                    # Closing (ValueError: the channel closed under the call):
                    # what is left goes back to be counted as not stored.
                    self._put_back(chunks[i:])
                    return
                except TrialplaneError as err:
                    # The server refused the samples themselves (the trial is
                    # gone, say); sending them again would be refused again.
                    log.warning("the server refused %d %s samples: %s", len(rows), series.name, err)
                with self._cond:
                    self._in_flight -= len(rows)
                    self._note_recovered()
                    self._cond.notify_all()
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()

    def _put_back(self, chunks) -> None:
        with self._cond:
            for series, rows in chunks:
                column = self._columns.setdefault(series, _Column())
                column.values.extendleft(reversed(rows))
            self._in_flight = 0
            self._cond.notify_all()

    def _note_recovered(self) -> None:
        if self._dropping and all(len(c.values) < self.max_samples // 2 for c in self._columns.values()):
            self._dropping = False
            log.warning("%d system samples dropped so far while the server was unreachable", self.dropped)
