"""List queries: page sizes, order_by, opaque keyset page tokens and ILIKE.

A page token holds the sort key of the last row returned plus a fingerprint of
the query, so the next page starts strictly after that row (never OFFSET) and a
token reused with a different filter or order is rejected.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field

from .errors import invalid

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True)
class Order:
    field: str = "id"
    descending: bool = False


@dataclass
class Page:
    size: int
    order: Order
    fingerprint: str
    # Sort key of the last row of the previous page: (order value, id).
    after: tuple | None = None


def page_size(requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    if requested < 0:
        raise invalid("page_size", "must not be negative")
    if requested == 0:
        return default
    return min(requested, maximum)


def parse_order_by(text: str, allowed: set[str]) -> Order:
    """Parses "<field> [asc|desc]"; empty means "id asc"."""
    text = text.strip()
    if not text:
        return Order()
    parts = text.split()
    if len(parts) > 2 or (len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
        raise invalid("order_by", "must be '<field>' or '<field> asc|desc'")
    name = parts[0]
    if name not in allowed:
        raise invalid("order_by", f"unknown field {name!r}; allowed: {', '.join(sorted(allowed))}")
    return Order(name, len(parts) == 2 and parts[1].lower() == "desc")


def fingerprint(query: dict) -> str:
    canonical = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_token(page: Page, last_key: tuple) -> str:
    body = json.dumps({"f": page.fingerprint, "k": list(last_key)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def make_page(token: str, size: int, order: Order, query: dict) -> Page:
    page = Page(size=size, order=order, fingerprint=fingerprint({"q": query, "o": [order.field, order.descending]}))
    if not token:
        return page
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
        key = body["k"]
        if not isinstance(key, list) or len(key) != 2 or not isinstance(key[1], int):
            raise ValueError("bad key")
        fp = body["f"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise invalid("page_token", "is malformed; pass back a next_page_token unchanged", reason="INVALID_PAGE_TOKEN") from None
    if fp != page.fingerprint:
        raise invalid("page_token", "belongs to a query with other filters or order_by", reason="INVALID_PAGE_TOKEN")
    page.after = tuple(key)
    return page


def tuple_page(token: str, size: int, query: dict, types: tuple[type, ...]) -> tuple[Page, tuple | None]:
    """A page over rows ordered by a composite key of the given types; the
    token carries the key of the last row returned."""
    page = make_page(token, size, Order("key"), query)
    if page.after is None:
        return page, None
    key = page.after[0]
    if not isinstance(key, list) or len(key) != len(types) or not all(isinstance(k, t) for k, t in zip(key, types)):
        raise invalid("page_token", "is malformed; pass back a next_page_token unchanged", reason="INVALID_PAGE_TOKEN")
    return page, tuple(key)


def next_tuple_token(page: Page, rows: list, key_of) -> str:
    """The next_page_token after rows (fetched with one row more than the
    page holds), or "" on the last page."""
    if len(rows) <= page.size:
        return ""
    return encode_token(page, (list(key_of(rows[page.size - 1])), 0))


# --- ILIKE -----------------------------------------------------------------

def fold(text: str) -> str:
    """The case folding names are stored and matched under."""
    return text.lower()


def check_ilike(pattern: str, path: str = "name_pattern") -> str:
    """Validates an ILIKE pattern and returns it folded for matching."""
    if len(pattern) > 512:
        raise invalid(path, "must be at most 512 characters")
    escaped = False
    for ch in pattern:
        escaped = not escaped and ch == "\\"
    if escaped:
        raise invalid(path, "ends with a lone backslash; use '\\\\' for a literal backslash")
    return fold(pattern)


def ilike_regex(pattern: str) -> re.Pattern:
    """The reference meaning of an ILIKE pattern, as a regular expression."""
    out = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            out.append(re.escape(next(chars, "\\")))
        elif ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | re.IGNORECASE)


def ilike_match(pattern: str, text: str) -> bool:
    return ilike_regex(fold(pattern)).fullmatch(fold(text)) is not None


@dataclass
class TrialFilter:
    study_id: int = 0
    states: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    created_after: int | None = None
    created_before: int | None = None
    name_pattern: str = ""


@dataclass
class StudyFilter:
    states: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    created_after: int | None = None
    created_before: int | None = None
    name_pattern: str = ""
    owner: str = ""


@dataclass
class WorkerFilter:
    trial_id: int = 0
    trial_run_id: int = 0
    states: list[str] = field(default_factory=list)


TRIAL_ORDER_FIELDS = {"id", "name", "create_time", "update_time", "steps_completed", "restarts", "searcher_metric_value"}
METRIC_AGGREGATES = ("last", "min", "max", "mean")


@dataclass(frozen=True)
class MetricOrder:
    group: str
    name: str
    aggregate: str


def metric_order(field_name: str) -> MetricOrder | None:
    """Parses "metrics.<group>.<name>.<aggregate>"; None for plain fields."""
    if not field_name.startswith("metrics."):
        return None
    rest = field_name[len("metrics."):]
    group, _, tail = rest.partition(".")
    name, _, aggregate = tail.rpartition(".")
    if not group or not name or aggregate not in METRIC_AGGREGATES:
        raise invalid("order_by", "a metric order is 'metrics.<group>.<name>.<last|min|max|mean>'")
    return MetricOrder(group, name, aggregate)


def parse_trial_order(text: str) -> Order:
    parts = text.split()
    if parts and parts[0].startswith("metrics."):
        metric_order(parts[0])
        return parse_order_by(text, {parts[0]})
    return parse_order_by(text, TRIAL_ORDER_FIELDS)
STUDY_ORDER_FIELDS = {"id", "name", "create_time", "update_time"}
