"""A Cosmos DB request-unit estimate from counted store operations, and the serverless price.

Rules of thumb (Azure docs: a 1 KB point read is 1 RU; writes cost several times more and grow with size and indexed
properties): point read 1 RU per KB, insert 5.5 RU per KB, replace twice an insert, delete as an insert, a query
2.8 RU plus 1 RU per KB returned, a transactional batch the sum of its operations. Each document pays for at least
1 KB, and ~0.2 KB more than its JSON for the envelope and system properties. Serverless: USD 0.25 per million RU
(several public sources; check https://azure.microsoft.com/pricing/details/cosmos-db/ before quoting it).
"""

from __future__ import annotations

from bench.store_counter import OpKind, OpTally

POINT_READ_RU_PER_KB = 1.0
INSERT_RU_PER_KB = 5.5
REPLACE_RU_PER_KB = 2 * INSERT_RU_PER_KB
DELETE_RU_PER_KB = INSERT_RU_PER_KB
QUERY_BASE_RU = 2.8
QUERY_RU_PER_KB = 1.0
ENVELOPE_KB = 0.2
SERVERLESS_USD_PER_MILLION_RU = 0.25

_RU_PER_KB = {OpKind.POINT_READ: POINT_READ_RU_PER_KB, OpKind.INSERT: INSERT_RU_PER_KB,
              OpKind.REPLACE: REPLACE_RU_PER_KB, OpKind.DELETE: DELETE_RU_PER_KB}


def request_units(kind: OpKind, tally: OpTally) -> float:
    if tally.calls == 0:
        return 0.0
    if kind in (OpKind.QUERY, OpKind.CROSS_PARTITION_QUERY):
        returned_kb = tally.kilobytes + tally.documents * ENVELOPE_KB
        return tally.calls * QUERY_BASE_RU + returned_kb * QUERY_RU_PER_KB
    per_document_kb = max(tally.kilobytes / max(tally.documents, 1) + ENVELOPE_KB, 1.0)
    # A read is charged per call (found or not); a write per document (a transactional batch costs what its
    # operations would cost one by one: it saves round trips, not request units).
    charged = tally.calls if kind is OpKind.POINT_READ else tally.documents
    return charged * _RU_PER_KB[kind] * per_document_kb


def usd_per_million_events(request_units_per_event: float) -> float:
    """RU per event x 1e6 events x $0.25 per 1e6 RU."""
    return request_units_per_event * SERVERLESS_USD_PER_MILLION_RU
