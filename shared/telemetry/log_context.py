"""Structured logs: the ids of what is being handled (workspace, cluster, job, event) on every log record made
while it is handled, as record attributes (Azure Monitor keeps them as custom dimensions) and as text."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

LOG_FIELDS = ("workspace", "cluster", "job", "event")
_ids: ContextVar[dict[str, str]] = ContextVar("computeplane_log_ids", default={})  # noqa: B039 - never mutated


@contextmanager
def log_ids(**ids: str | None) -> Iterator[None]:
    token = set_log_ids(**ids)
    try:
        yield
    finally:
        reset_log_ids(token)


def set_log_ids(**ids: str | None) -> Token[dict[str, str]]:
    """``log_ids`` for a caller that keeps the token and hands it to ``reset_log_ids`` (no generator)."""
    return _ids.set(_ids.get() | {k: v for k, v in ids.items() if v})


def reset_log_ids(token: Token[dict[str, str]]) -> None:
    _ids.reset(token)


def current_log_ids() -> dict[str, str]:
    """The ids of what is being handled now (read only: a copy is made by each ``set_log_ids``)."""
    return _ids.get()


class LogIds(logging.Filter):
    """Adds ``computeplane_<field>`` attributes and ``ids`` (" workspace=... cluster=...", or "") to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = _ids.get()
        for name in LOG_FIELDS:
            setattr(record, f"computeplane_{name}", ids.get(name, ""))
        record.ids = "".join(f" {name}={ids[name]}" for name in LOG_FIELDS if name in ids)
        return True


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s:%(ids)s %(message)s"


def add_ids_to_logs(logger: logging.Logger | None = None) -> None:
    """Every handler of ``logger`` (the root by default) gets the ids and the format that shows them."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, LogIds) for f in handler.filters):
            handler.addFilter(LogIds())
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
