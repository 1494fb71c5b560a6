"""Domain errors raised by the apps' ``services.py``, free of any HTTP or form framework.

Each maps to an HTTP answer once (``gtvision.drf.exception_handler``).
"""

from __future__ import annotations


class QuotaExceeded(Exception):
    """A per-user or per-tenant limit is reached (HTTP 429); the message says which, for the
    user (translated)."""
