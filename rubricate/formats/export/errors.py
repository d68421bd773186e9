"""Why a record gives no row for a format."""

from __future__ import annotations


class Unusable(Exception):
    """The record lacks what the format needs; `reason` goes to the rejects file."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
