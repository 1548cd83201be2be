"""Small helpers shared by the command modules."""

from __future__ import annotations

import logging

__all__ = ["setup_logging"]


def setup_logging():
    """INFO-level messages to stderr, unless the caller configured logging already."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
