"""Forge deliveries (POST /webhooks/{forge}): read here (forges.py), verified and matched
in entities, which alone holds the webhook secrets."""

from __future__ import annotations

import logging

from connexion import request

from api_server import backends, forges
from api_server.problems import ApiError
from bob_pb import entities_pb2

log = logging.getLogger(__name__)


async def webhook_deliver(forge: str):
    # No `body` parameter: Connexion then leaves the body (validated as a JSON object) for
    # the handler to read once, as the bytes the signature covers.
    headers = request.headers
    signature = forges.signature(forge, headers)
    if not signature:
        names = " or ".join(forges.HEADERS[forge].signature)
        raise ApiError(
            401, f"The delivery is not signed: no {names} header (set the webhook's secret)"
        )
    raw = await request.body()
    try:
        parsed = forges.parse(forge, headers, forges.payload_of(raw))
        delivery_id = forges.delivery_id(forge, headers, raw)
    except forges.Unsupported as exc:
        raise ApiError(400, f"Unsupported {forge} delivery: {exc}") from None
    event = parsed.event
    b = backends.current()
    outcome = await b.call(
        b.entities.DeliverWebhook(
            entities_pb2.WebhookDelivery(
                forge=forge,
                delivery_id=delivery_id,
                body=raw,
                signature=signature,
                event=entities_pb2.ForgeEvent(**vars(event)),
                ignored=parsed.ignored,
            )
        )
    )
    if not outcome.verified:
        raise ApiError(
            401,
            f"The signature is not verified by the webhook secret of any trigger of "
            f"{event.repository} (or no pipeline has a trigger on it)",
        )
    runs = [{"group": r.group, "name": r.name, "run-id": r.run_id} for r in outcome.runs]
    if runs:
        message = f"started {len(runs)} run(s): {', '.join(r['run-id'] for r in runs)}"
    else:
        message = outcome.reason
    if outcome.redelivery:
        message = f"redelivery of {delivery_id}, already answered: {message}"
    log.info("%s delivery %s: %s", forge, delivery_id, message)
    answer = {
        "message": message,
        "runs": runs,
        "skipped": [
            {"group": s.group, "name": s.name, "reason": s.reason} for s in outcome.skipped
        ],
        "delivery": delivery_id,
        "redelivery": outcome.redelivery,
    }
    return answer, 202
