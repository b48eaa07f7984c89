"""Fixtures the end-to-end suites share: an SDK client of the test's
server, and a proxy in front of it that can cut or fail calls."""

from __future__ import annotations

import pytest
from support.proxy import Proxy
from trialplane.client import Client


@pytest.fixture
def sdk(server):
    with Client(server.address) as client:
        yield client


@pytest.fixture
def proxy(server):
    p = Proxy(server.address)
    yield p
    p.stop()
