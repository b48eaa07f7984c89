"""The Python SDK: `Client` and what its calls raise."""

from .channel import RetryPolicy
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
from .resources import SeriesArrays, series_arrays

__all__ = [
    "Aborted", "AlreadyExists", "Cancelled", "Client", "DataLoss", "DeadlineExceeded", "FailedPrecondition",
    "FieldViolation", "Internal", "InvalidArgument", "NotFound", "OutOfRange", "PermissionDenied",
    "ResourceExhausted", "RetryPolicy", "SeriesArrays", "TrialplaneError", "Unauthenticated", "Unavailable",
    "Unimplemented", "Unknown", "series_arrays",
]
