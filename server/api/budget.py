"""Upper bounds of encoded sizes, so that a reader cuts its page to what the
server may send (--max-message-bytes) before it builds the page.

The bounds are loose on purpose (every int64 counted at its longest varint):
a page a little smaller than it could be costs one more call, a page too
large fails. What still does not fit, one item larger than the limit or an
answer that has no pages, the handler guard answers RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

INT64 = 10  # the longest varint
DOUBLE = 8
# A field's tag and length prefix (field numbers below 2048, lengths below 2**28).
FIELD = 6
# A scalar field: its tag and an int64 at its longest.
SCALAR = 2 + INT64
# What an answer holds besides its items: next_page_token and the like.
RESERVE = 1024


def text(s: str) -> int:
    """The encoded size of a string field holding s."""
    return FIELD + (len(s) if s.isascii() else len(s.encode()))


class Room:
    """What is left of one answer's bytes."""

    def __init__(self, limit: int):
        self.left = limit - RESERVE

    def fits(self, size: int) -> bool:
        return size <= self.left

    def take(self, size: int) -> None:
        self.left -= size

    def count(self, each: int, most: int) -> int:
        """How many items of each bytes fit, at most most; one at least, so
        that every page moves on."""
        return max(1, min(most, self.left // each))
