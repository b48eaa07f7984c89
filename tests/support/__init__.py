"""What the test suites share: real servers, one client, decoded errors, and
shortcuts for studies and trials."""

from .client import Client
from .errors import ErrorDetails, error_of
from .servers import (
    BIN,
    ROOT,
    FakeClock,
    ServerProcess,
    ServerThread,
    start_server,
    tool,
)
from .studies import create_study, make_study

__all__ = [
    "BIN", "ROOT", "Client", "ErrorDetails", "FakeClock", "ServerProcess", "ServerThread", "create_study",
    "error_of", "make_study", "start_server", "tool",
]
