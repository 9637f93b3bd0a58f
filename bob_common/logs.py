"""Logging set-up, once per process."""

from __future__ import annotations

import logging
import sys

from bob_common.rpc import RunIdFilter

# Libraries that log every connection or frame at INFO; their warnings still show.
_NOISY = (
    "aio_pika",
    "aiormq",
    "pamqp",
    "urllib3",
    "docker",
    "uvicorn.access",
    "grpc",
    "peewee",
    "httpx",
    "httpcore",
)

# Libraries that log the values a client posted (Connexion names a pipeline var's value
# when it fails validation, at INFO): their warnings only. The client is told anyway.
_ECHOING = ("connexion.validators",)


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s%(run)s: %(message)s")
    )
    # ` run=<id>` on the lines logged while the work is about a run (bob_common.rpc).
    handler.addFilter(RunIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in (*_NOISY, *_ECHOING):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
