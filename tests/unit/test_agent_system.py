"""The agent's system metrics without a server: counters turned into rates,
and the GPU readings through a stand-in for nvidia-ml-py."""

import logging
import sys
import types

import pytest
from trialplane.client.agent.system import HostIo, Rates, Series, _Gpus


def test_rates_are_the_growth_per_second_since_the_reading_before():
    rates = Rates()
    assert rates.update(10.0, {"read": 1000, "sent": 50}) == {}  # the baseline
    assert rates.update(12.0, {"read": 5000, "sent": 50}) == {"read": 2000.0, "sent": 0.0}
    assert rates.update(12.5, {"read": 5500, "sent": 1050}) == {"read": 1000.0, "sent": 2000.0}


def test_a_counter_that_went_down_or_appeared_gives_no_rate_until_the_next_reading():
    rates = Rates()
    rates.update(0.0, {"read": 900})
    # Reset (a disk removed and another counted): no rate now, the new value is the next baseline.
    assert rates.update(1.0, {"read": 100, "new": 7}) == {}
    assert rates.update(2.0, {"read": 400, "new": 17}) == {"read": 300.0, "new": 10.0}
    # A clock that did not move gives nothing rather than a division by zero.
    assert rates.update(2.0, {"read": 500}) == {}


def test_host_io_reads_psutil_style_counters_as_series_per_second():
    readings = iter([
        {"disk_read_bytes_per_second": 0.0, "net_sent_bytes_per_second": 100.0},
        {"disk_read_bytes_per_second": 4096.0, "net_sent_bytes_per_second": 1100.0},
    ])
    clock = iter([100.0, 100.5])
    io = HostIo(counters=lambda: next(readings), clock=lambda: next(clock))
    assert io.read() == []
    assert io.read() == [(Series("disk_read_bytes_per_second"), 8192.0), (Series("net_sent_bytes_per_second"), 2000.0)]


def fake_nvml(power_supported: bool) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.nvmlInit = lambda: None
    nvml.nvmlShutdown = lambda: None
    nvml.nvmlDeviceGetCount = lambda: 2
    nvml.nvmlDeviceGetHandleByIndex = lambda i: i
    nvml.nvmlDeviceGetUUID = lambda h: f"GPU-{h}".encode()
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=40 + h)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=(h + 1) * 2**30)

    def power(handle):
        if not power_supported or handle == 1:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return 187_500  # milliwatts

    nvml.nvmlDeviceGetPowerUsage = power
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: 61 + h if sensor == 0 else None
    return nvml


def test_gpus_report_power_in_watts_and_temperature_and_skip_what_a_gpu_cannot_read(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(power_supported=True))
    gpus = _Gpus()
    assert dict(gpus.read()) == {
        Series("gpu_util", "GPU-0"): 40.0, Series("gpu_memory_used", "GPU-0"): 2.0**30,
        Series("gpu_power_watts", "GPU-0"): 187.5, Series("gpu_temperature_celsius", "GPU-0"): 61.0,
        # GPU-1 has no power reading; the rest of its readings still go.
        Series("gpu_util", "GPU-1"): 41.0, Series("gpu_memory_used", "GPU-1"): 2.0**31,
        Series("gpu_temperature_celsius", "GPU-1"): 62.0,
    }
    gpus.close()


def test_without_nvidia_ml_py_there_are_no_gpu_readings_and_one_log_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    with caplog.at_level(logging.INFO, logger="trialplane.agent"):
        gpus = _Gpus()
        assert gpus.read() == [] and gpus.read() == []
    assert [r.getMessage() for r in caplog.records] == ["nvidia-ml-py is not installed; no GPU metrics"]


@pytest.mark.parametrize("failure", [OSError("no /proc/diskstats"), RuntimeError("no disks")])
def test_a_host_without_disk_counters_still_reports_its_network(monkeypatch, failure):
    import psutil
    from trialplane.client.agent import system

    def no_disks(*args, **kwargs):
        raise failure

    monkeypatch.setattr(psutil, "disk_io_counters", no_disks)
    assert set(system.io_counters()) == {"net_sent_bytes_per_second", "net_recv_bytes_per_second"}
