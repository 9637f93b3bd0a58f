"""Logging set-up, once per process."""

from __future__ import annotations

import logging
import sys

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


def configure_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _NOISY:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
