"""The form every Store adapter writes documents in: their fields, less those at their defaults.

Cosmos DB charges a write by the document's size (``python -m bench.store_ops`` estimates it), and both stores spend
their time parsing and printing JSON. A cluster with a job queued and a node has about half as many bytes without
its nulls, empty lists and counters at zero; reading fills them in again, so the domain never sees the difference.

A default is therefore part of the stored schema: changing one changes the meaning of documents written before.
Give a new meaning a new field (or a migration), never a new default. Fields a query filters or sorts on are
written whatever their value (``cosmos_store.job_document``); SQLite keeps them in columns of their own.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def stored_json(document: BaseModel) -> str:
    return document.model_dump_json(exclude_defaults=True)


def stored_fields(document: BaseModel) -> dict[str, Any]:
    return document.model_dump(mode="json", exclude_defaults=True)
