"""Only the runner holding a run's claim reports on it: each event must carry the MAC of
its body under the secret of the run's current claim (bob_common/claim_proof.py).

Anyone who can publish to bob.events could otherwise mark any run passed. An event that
is not signed with the current claim's secret (forged, unsigned, of an earlier attempt
whose claim is over, or of a run nobody holds) is refused: never applied, logged naming
the run, counted; the consumer acks it, since redelivering it cannot make it valid.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from bob_common import claim_proof, rpc
from entities_svc import progress, run_queries
from entities_svc.models import database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Signed:
    """An event as it came: decoded, with the body it was decoded from and its MAC."""

    event: progress.RunEvent
    body: bytes
    mac: str


def apply_signed(signed: list[Signed]) -> progress.Outcome:
    """Applies the events signed by their run's current claim, in one transaction with
    the claims they were checked against; refuses the others."""
    with database.atomic():
        # Read once: the claims to check against, and the rows the events apply to.
        rows = {
            row.id: row for row in run_queries.rows_by_id(list({s.event.run_id for s in signed}))
        }
        keys = {run_id: bytes.fromhex(row.claim_key) for run_id, row in rows.items()}
        admitted: list[progress.RunEvent] = []
        refused: Counter[str] = Counter()
        for s in signed:
            key = keys.get(s.event.run_id)
            if key is None:
                admitted.append(s.event)  # an unknown run: progress skips and counts it
            elif claim_proof.matches(key, s.body, s.mac):
                admitted.append(s.event)
            else:
                refused[s.event.run_id] += 1
                _log_refused(s, key)
        outcome = progress.apply_events(admitted, rows) if admitted else progress.Outcome()
    outcome.refused = sum(refused.values())
    return outcome


def _log_refused(s: Signed, key: bytes) -> None:
    event = s.event
    if not s.mac:
        why = "it carries no claim MAC"
    elif not key:
        why = "nobody holds the run's claim"
    else:
        why = "its claim MAC is not the current claim's (forged, or of an earlier claim)"
    with rpc.about_run(event.run_id):
        log.warning(
            "run %s: refused event seq %d (attempt %d, said to be from %s): %s",
            event.run_id,
            event.seq,
            event.attempt,
            event.runner_id or "no runner",
            why,
        )
