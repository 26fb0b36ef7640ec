"""Identifiers for rows: a short prefix, then 32 hex digits that sort by creation time."""

from __future__ import annotations

import os
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_last_random = 0
_RANDOM_BITS = 80
_RANDOM_MASK = (1 << _RANDOM_BITS) - 1


def new_id(prefix: str) -> str:
    """A ULID-like id: 48 bits of milliseconds, then 80 random bits; monotonic within this process."""
    global _last_ms, _last_random
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            now_ms = _last_ms
            _last_random = (_last_random + 1) & _RANDOM_MASK
        else:
            _last_random = int.from_bytes(os.urandom(10), "big") >> 1
        _last_ms = now_ms
        value = (now_ms << _RANDOM_BITS) | _last_random
    return f"{prefix}_{value:032x}"
