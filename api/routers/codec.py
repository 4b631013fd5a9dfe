"""The codec server: `POST /codec/encode` and `POST /codec/decode` for the Web UI and the CLI.

Both speak Temporal's codec server protocol: the body is a `Payloads` protobuf as JSON
(`{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}`), the
answer is the same shape, and a body or payload that cannot be read is a 400. The
`X-Namespace` header the UI and CLI send is accepted and not needed: one codec serves
every namespace. Browsers reach it from the origins in `CODEC_CORS_ORIGINS` only (CORS
applies to `/codec/*` and nothing else).

Who may call it:

- **Without `PAYLOAD_ENCRYPTION_KEY`** the codec only compresses; decoding reveals
  nothing that zlib hides from anyone holding the history, so no credentials are needed.
- **With a key**, decode is a decryption oracle and encode an encryption oracle for every
  tenant's payloads (one key encrypts them all), so a caller needs the operator token
  (`ORCHESTRATOR_ADMIN_TOKEN`), as `Authorization: Bearer ...` (what `temporal
  --codec-auth` sends) or `X-API-Key`: the Web UI and `temporal` are operators' tools.
  An organization's own credentials, admin's included, get 403; wrong ones 401.
- **The local Web UI**: the embedded dev server's UI sends no credentials. When
  `ORCHESTRATOR_UI_CODEC_ENDPOINT` is set (the local stack's opt-in; `orchestrator up`
  sets it for the codec server it serves itself, `api.app.create_codec_app`), a request
  without credentials is served if it comes from a loopback address and its `Origin` is
  absent (a local CLI) or one of `CODEC_CORS_ORIGINS`. Browsers always send `Origin` on a
  POST, so a web page elsewhere, even through DNS rebinding to 127.0.0.1, is refused. Do
  not set it on an API behind a same-host proxy that hides the client address.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, Response, Security, status
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import json_format
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads

from api.auth import api_key_header, bearer, get_principal, unauthorized
from api.deps import ApiSettingsDep, TemporalSettingsDep
from api.rate_limit import refuse_guessing_client
from api.schemas.codec import CodecPayloads
from core.infrastructure.codec import (
    CodecError,
    KeyConfigError,
    OrchestratorCodec,
    codec_from_settings,
)
from core.infrastructure.settings import TemporalSettings

PREFIX = "/codec"
MAX_BODY_BYTES = 16 * 1024 * 1024
ALLOWED_HEADERS = ["Content-Type", "X-Namespace", "Authorization", "X-API-Key"]

router = APIRouter(prefix=PREFIX, tags=["codec"])

Endpoint = TypeVar("Endpoint", bound=Callable[..., Awaitable[Response]])


PAYLOADS_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CodecPayloads"}}},
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not Payloads JSON, or a payload does not decode."},
    401: {"description": "A key is configured and the caller is not authenticated."},
    403: {"description": "A key is configured and the caller is not the operator."},
    429: {"description": "Too many failed authentications from this address."},
    413: {"description": "The body is larger than 16 MiB."},
}


class CodecCORSMiddleware:
    """Starlette's CORS handling for `/codec/*` only: the UI origins may call the codec, nothing else."""

    def __init__(self, app: ASGIApp, origins: list[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["POST"],
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=True,  # the UI's "include cross-origin credentials" option
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def get_codec(request: Request) -> OrchestratorCodec:
    """The app's codec, built from its settings on first use."""
    state = request.app.state
    codec: OrchestratorCodec | None = getattr(state, "codec", None)
    if codec is None:
        try:
            codec = state.codec = codec_from_settings(state.settings.temporal)
        except KeyConfigError as exc:
            raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, str(exc)) from None
    return codec


CodecDep = Annotated[OrchestratorCodec, Depends(get_codec)]


def _is_local_ui(request: Request, settings: TemporalSettings) -> bool:
    if not settings.ui_codec_endpoint or request.client is None:
        return False
    try:
        loopback = ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:
        return False
    origin = request.headers.get("origin")
    return loopback and (origin is None or origin.rstrip("/") in settings.codec_origins)


async def codec_caller(
    request: Request,
    api_settings: ApiSettingsDep,
    temporal_settings: TemporalSettingsDep,
    codec: CodecDep,
    api_key: Annotated[str | None, Security(api_key_header)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
) -> str:
    """Who calls the codec (see the module docstring); raises 401/403 when refused."""
    presented = api_key or (credentials.credentials if credentials is not None else None)
    if presented:
        # Before the operator comparison too: a throttled address learns nothing.
        await refuse_guessing_client(request, api_settings)
        operator = api_settings.admin_token
        if operator is not None and hmac.compare_digest(
            presented.encode(), operator.get_secret_value().encode()
        ):
            return "operator"
        principal = await get_principal(request, api_key, credentials)
        if codec.keys:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "payloads are encrypted with one key for every tenant: the codec needs the "
                "operator token (ORCHESTRATOR_ADMIN_TOKEN)",
            )
        return principal.subject
    if not codec.keys:
        return "anonymous"  # compression only: nothing to protect
    if _is_local_ui(request, temporal_settings):
        return "local-ui"
    raise unauthorized(
        "payloads are encrypted: the codec needs the operator token "
        "(Authorization: Bearer <ORCHESTRATOR_ADMIN_TOKEN> or X-API-Key)"
    )


CallerDep = Annotated[str, Depends(codec_caller)]


async def _read_payloads(request: Request) -> Payloads:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB",
            )
    try:
        return json_format.Parse(bytes(body), Payloads(), ignore_unknown_fields=True)
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"the body is not Payloads JSON: {exc}"
        ) from None


def _answer(payloads: Payloads) -> Response:
    body = json_format.MessageToJson(payloads, indent=None)
    if not payloads.payloads:
        body = '{"payloads": []}'
    return Response(body, media_type="application/json")


def _payloads_route(path: str, summary: str) -> Callable[[Endpoint], Endpoint]:
    """A POST that reads and answers `Payloads` JSON, described as such in the OpenAPI schema."""
    return router.post(
        path,
        response_model=CodecPayloads,
        openapi_extra=PAYLOADS_BODY,
        responses=ERRORS,
        summary=summary,
    )


@_payloads_route("/encode", "Encode payloads as workers write them")
async def encode(request: Request, codec: CodecDep, _caller: CallerDep) -> Response:
    """Compress (and with a key, encrypt) each payload, as the workers' data converter does."""
    payloads = await _read_payloads(request)
    return _answer(Payloads(payloads=await codec.encode(payloads.payloads)))


@_payloads_route("/decode", "Decode payloads from a history")
async def decode(request: Request, codec: CodecDep, _caller: CallerDep) -> Response:
    """Reverse the codec's layers; payloads it did not encode come back unchanged."""
    payloads = await _read_payloads(request)
    try:
        decoded = await codec.decode(payloads.payloads)
    except CodecError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    return _answer(Payloads(payloads=decoded))
