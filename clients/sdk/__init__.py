"""The Python SDK: `Client` and what its calls raise; `init()` and the trial
handle `Run` for training scripts; `sync_journals()` for what they left."""

from .channel import TLS, RetryPolicy
from .client import Client
from .errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    TrialplaneError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
    Unknown,
)
from .resources import ProfilerApi, SeriesArrays, series_arrays
from .run import CloseResult, Run, Terminated, init
from .sync import SyncResult, sync_journals

__all__ = [
    "Aborted", "AlreadyExists", "Cancelled", "Client", "CloseResult", "DataLoss", "DeadlineExceeded",
    "FailedPrecondition", "FieldViolation", "Internal", "InvalidArgument", "NotFound", "OutOfRange",
    "PermissionDenied", "ProfilerApi", "ResourceExhausted", "RetryPolicy", "Run", "SeriesArrays", "SyncResult", "TLS",
    "Terminated", "TrialplaneError",
    "Unauthenticated", "Unavailable", "Unimplemented", "Unknown", "init", "series_arrays", "sync_journals",
]
