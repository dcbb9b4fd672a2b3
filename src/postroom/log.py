"""Structured logging: one line per event, ``key=value`` pairs, to stderr."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("postroom")


def setup(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("postroom")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _quote(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\\') or not text.isprintable():
        text = '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'
    return text


def event(name: str, level: int = logging.INFO, **fields: object) -> None:
    """Log ``name`` with fields; values are escaped so a client cannot forge log lines."""
    if logger.isEnabledFor(level):
        parts = [name] + [f"{k}={_quote(v)}" for k, v in fields.items() if v is not None]
        logger.log(level, " ".join(parts))
