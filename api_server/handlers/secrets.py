"""The write-only secret store (ours): put, list (names and times), delete. No operation
answers a value; entities stores them encrypted."""

from __future__ import annotations

from google.protobuf import empty_pb2

from api_server import backends, convert, paging
from bob_pb import entities_pb2

OK = {"message": "Ok"}


async def secret_put(name: str, body: dict):
    b = backends.current()
    request = entities_pb2.PutSecretRequest(name=name, value=body["value"])
    await b.call(b.entities.PutSecret(request))
    return OK, 202


async def secret_list(limit: int | None = None, cursor: str | None = None):
    b = backends.current()
    reply = await b.call(b.entities.ListSecrets(empty_pb2.Empty()))
    page, headers = paging.slice_page(reply.secrets, lambda s: [s.name], limit, cursor)
    return {"message": [convert.secret_info(s) for s in page]}, 200, headers


async def secret_delete(name: str):
    b = backends.current()
    await b.call(b.entities.DeleteSecret(entities_pb2.SecretRef(name=name)))
    return OK, 202
