"""HTTP answers of the local exchange (JSON bodies, status, headers)."""

from __future__ import annotations

import json
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.http11 import Response


def json_response(status: int, obj, headers: dict[str, str] | None = None) -> Response:
    return response(status, json.dumps(obj).encode(), headers)


def response(
    status: int, body: bytes, headers: dict[str, str] | None = None, content_type="application/json"
) -> Response:
    h = Headers()
    h["Content-Type"] = content_type
    h["Content-Length"] = str(len(body))
    h["Connection"] = "close"
    for k, v in (headers or {}).items():
        h[k] = v
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "I'm a teapot" if status == 418 else "Error"
    return Response(status, reason, h, body)
