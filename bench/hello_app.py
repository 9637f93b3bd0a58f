"""The floor of scenario 5: a hello-world Connexion endpoint, served like the API server."""

from __future__ import annotations

import sys
from pathlib import Path

import connexion
import uvicorn

SPEC = """
openapi: "3.0.3"
info: {title: hello, version: "1"}
paths:
  /hello/{id}:
    get:
      operationId: bench.hello_app.hello
      parameters:
        - {name: id, in: path, required: true, schema: {type: string}}
      responses:
        "200":
          description: hello
          content:
            application/json:
              schema: {type: object}
"""


async def hello(id_: str):
    return {"message": "passed"}, 200


def main() -> int:
    port = int(sys.argv[1])
    spec = Path(sys.argv[2])
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(SPEC)
    app = connexion.AsyncApp(__name__, specification_dir=str(spec.parent))
    app.add_api(spec.name, strict_validation=True, pythonic_params=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
