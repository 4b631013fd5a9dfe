"""A loopback fake of an OpenAI-compatible chat completions API (``POST /v1/chat/completions``).

Real HTTP on 127.0.0.1 with an ephemeral port, served from a background thread, so the
real ``openai`` SDK (or any HTTP client) can talk to it::

    with FakeOpenAIAPI(api_key="test-key") as api:
        api.enqueue_error(429, "Rate limit reached", headers={"retry-after-ms": "1500"})
        api.enqueue_tool_call("write_file", {"path": "a.md", "content": "hi"})
        client = AsyncOpenAI(api_key="test-key", base_url=api.base_url, max_retries=0)
        ...
        assert api.requests[-1].json["messages"][0]["role"] == "system"

It speaks the wire format the way OpenAI does and compatible servers copy it: tool calls
(``tool_calls`` with JSON ``arguments`` strings, answered by ``role: tool`` messages),
``finish_reason``, ``usage`` with ``prompt_tokens_details.cached_tokens``, errors as
``{"error": {"message", "type", "param", "code"}}`` and ``x-request-id`` headers. Requests
are checked as the real API checks them where that is cheap (unknown fields, the pairing of
tool calls and tool messages, auth), so a malformed request fails here as in production.

With ``api_key`` set, requests must carry ``Authorization: Bearer <api_key>`` (like
api.openai.com); without it, like a local server, no key is needed, but the key
``bad-key`` is always refused.

Scripting and the server machinery (``enqueue``, ``responder``, ``requests``, ``replies``,
``DropConnection``, ``DropMidResponse``, ``RawReply``) are those of ``LoopbackAPI`` in
``tests/fakes/loopback.py``. A scripted success body is partial: ``message``,
``finish_reason``, ``usage``, ``model`` and ``id``, each filled in when left out (see
``completion()``). Run standalone with ``python -m tests.fakes.openai_api [--port N]``.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fakes.loopback import (
    ErrorReply,
    InvalidRequest,
    LoopbackAPI,
    Responder,
    bearer,
    estimate_tokens,
    new_id,
    serve_until_stopped,
)

__all__ = [
    "BAD_API_KEY",
    "CHAT_PATH",
    "FakeOpenAIAPI",
    "completion",
    "error_body",
    "text_completion",
    "tool_call_completion",
]

CHAT_PATH = "/v1/chat/completions"
BAD_API_KEY = "bad-key"

# The error `type` and `code` OpenAI uses for each status; anything else falls back by class.
ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    413: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}

# Request fields the chat completions API knows; anything else is refused as OpenAI does
# ("Unrecognized request argument supplied"), which catches our own fields leaking out.
KNOWN_REQUEST_FIELDS = frozenset(
    {
        "messages",
        "model",
        "audio",
        "frequency_penalty",
        "function_call",
        "functions",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


# --------------------------------------------------------------------------- builders


def error_body(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def completion(
    content: str | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    *,
    finish_reason: str | None = None,
    model: str | None = None,
    usage: Mapping[str, Any] | None = None,
    refusal: str | None = None,
) -> dict[str, Any]:
    """A partial success body; ``FakeOpenAIAPI`` fills whatever is left out.

    ``usage`` may give any of ``prompt_tokens``, ``completion_tokens`` and
    ``prompt_tokens_details`` (e.g. ``{"cached_tokens": 40}``); the rest is estimated.
    """
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if refusal is not None:
        message["refusal"] = refusal
    body: dict[str, Any] = {"message": message}
    if finish_reason is not None:
        body["finish_reason"] = finish_reason
    if model is not None:
        body["model"] = model
    if usage is not None:
        body["usage"] = dict(usage)
    return body


def text_completion(text: str, **kwargs: Any) -> dict[str, Any]:
    return completion(text, **kwargs)


def tool_call_completion(
    name: str,
    arguments: Mapping[str, Any] | str,
    *,
    text: str | None = None,
    call_id: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """One function call; ``arguments`` as a string goes out verbatim (e.g. broken JSON)."""
    call = {
        "id": call_id or new_id("call"),
        "type": "function",
        "function": {
            "name": name,
            "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        },
    }
    return completion(text, [call], **kwargs)


def _complete(body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in every field the wire format requires that a scripted body left out."""
    message = dict(body.get("message") or {"role": "assistant", "content": "OK"})
    message.setdefault("role", "assistant")
    message.setdefault("content", None)
    message.setdefault("refusal", None)
    scripted_usage = dict(body.get("usage") or {})
    details = {"cached_tokens": 0, "audio_tokens": 0}
    details.update(scripted_usage.pop("prompt_tokens_details", None) or {})
    usage = {
        "prompt_tokens": estimate_tokens([request.get("messages", []), request.get("tools", [])]),
        "completion_tokens": estimate_tokens(message),
        **scripted_usage,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    usage["prompt_tokens_details"] = details
    usage.setdefault("completion_tokens_details", {"reasoning_tokens": 0})
    return {
        "id": body.get("id") or new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model") or request.get("model") or "gpt-4.1",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": body.get("finish_reason")
                or ("tool_calls" if message.get("tool_calls") else "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
    }


# --------------------------------------------------------------------------- validation


def _invalid(message: str, param: str | None = None, status: int = 400) -> InvalidRequest:
    return InvalidRequest(status, message, error_type="invalid_request_error", param=param)


def _validate_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _invalid("We could not parse the JSON body of your request.")
    for name in sorted(body):
        if name not in KNOWN_REQUEST_FIELDS:
            raise _invalid(f"Unrecognized request argument supplied: {name}", name)
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise _invalid("you must provide a model parameter", "model")
    if body.get("stream"):
        raise _invalid("the fake OpenAI API does not stream", "stream")
    for field_name in ("max_tokens", "max_completion_tokens"):
        value = body.get(field_name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise _invalid(f"Invalid '{field_name}': integer below minimum value.", field_name)
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type") != "function" or not function:
            raise _invalid(f"Missing required parameter: 'tools[{i}].function'.", f"tools[{i}]")
        if not TOOL_NAME.match(str(function.get("name") or "")):
            raise _invalid(
                f"Invalid 'tools[{i}].function.name': string does not match pattern.",
                f"tools[{i}].function.name",
            )
        if "parameters" in function and not isinstance(function["parameters"], dict):
            raise _invalid(
                f"Invalid 'tools[{i}].function.parameters': expected an object.",
                f"tools[{i}].function.parameters",
            )
    _validate_messages(body.get("messages"))
    return body


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise _invalid("[] is too short - 'messages'", "messages")
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            raise _invalid(f"Invalid value: '{role}'. Supported values are: {sorted(ROLES)}.")
        content = msg.get("content")
        if role == "assistant":
            calls = msg.get("tool_calls")
            if content is None and not calls:
                raise _invalid(
                    f"Invalid value for 'messages[{i}].content': expected a string, got null.",
                    f"messages.[{i}].content",
                )
            for j, call in enumerate(calls or []):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict) or not isinstance(call.get("id"), str):
                    raise _invalid(f"Missing required parameter: 'messages[{i}].tool_calls[{j}]'.")
                if not isinstance(function.get("arguments"), str):
                    raise _invalid(
                        f"Invalid type for 'messages[{i}].tool_calls[{j}].function.arguments': "
                        "expected a string."
                    )
        elif not isinstance(content, str | list):
            raise _invalid(
                f"Invalid type for 'messages[{i}].content': expected a string or an array.",
                f"messages.[{i}].content",
            )
        if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
            raise _invalid(
                f"Missing required parameter: 'messages[{i}].tool_call_id'.",
                f"messages.[{i}].tool_call_id",
            )
    # Tool calls and tool messages must pair up, the rule agent loops most often get wrong.
    i = 0
    while i < len(messages):
        msg = messages[i]
        if msg["role"] == "tool":
            raise _invalid(
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceeding message with 'tool_calls'.",
                f"messages.[{i}].role",
            )
        i += 1
        call_ids = [call["id"] for call in msg.get("tool_calls") or []]
        if msg["role"] != "assistant" or not call_ids:
            continue
        answered: list[str] = []
        while i < len(messages) and messages[i]["role"] == "tool":
            if messages[i]["tool_call_id"] not in call_ids:
                raise _invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            answered.append(messages[i]["tool_call_id"])
            i += 1
        missing = [call_id for call_id in call_ids if call_id not in answered]
        if missing:
            raise _invalid(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(missing)}",
                f"messages.[{i - 1}].role",
            )


# --------------------------------------------------------------------------- the server


class FakeOpenAIAPI(LoopbackAPI):
    """The fake chat completions API. Use as a context manager, or ``start()``/``close()``."""

    request_id_header = "x-request-id"
    author = "the fake OpenAI API"

    def __init__(
        self, responder: Responder | None = None, *, port: int = 0, api_key: str | None = None
    ) -> None:
        super().__init__(responder, port=port)
        self.api_key = api_key
        """The key requests must carry; None: none needed (a local server)."""

    @property
    def base_url(self) -> str:
        """What the SDK takes as ``base_url`` (OPENAI_BASE_URL); it appends the path."""
        return f"http://127.0.0.1:{self.port}/v1"

    def enqueue_text(self, text: str, **kwargs: Any) -> None:
        """Kwargs as for ``completion()``: finish_reason, model, usage."""
        self.enqueue(text_completion(text, **kwargs))

    def enqueue_tool_call(
        self, name: str, arguments: Mapping[str, Any] | str, **kwargs: Any
    ) -> None:
        """Kwargs as for ``tool_call_completion()``: text, call_id, finish_reason, usage..."""
        self.enqueue(tool_call_completion(name, arguments, **kwargs))

    def _validate(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> dict[str, Any]:
        if method != "POST" or path != CHAT_PATH:
            raise _invalid(f"Invalid URL ({method} {path})", status=404)
        key = bearer(headers)
        if key == BAD_API_KEY or (self.api_key is not None and key != self.api_key):
            if key is None:
                raise _invalid(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    status=401,
                )
            raise InvalidRequest(
                401,
                f"Incorrect API key provided: {key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                error_type="invalid_request_error",
                code="invalid_api_key",
            )
        return _validate_body(body)

    def _success_body(self, body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
        return _complete(body, request)

    def _error_body(self, reply: ErrorReply) -> dict[str, Any]:
        error_type, code = ERROR_TYPES.get(
            reply.status, ("server_error" if reply.status >= 500 else "invalid_request_error", None)
        )
        return error_body(
            reply.message,
            reply.error_type or error_type,
            reply.code or (None if reply.error_type else code),
            reply.param,
        )

    def _tool_names(self, request: Mapping[str, Any]) -> list[str]:
        return [
            str((tool.get("function") or {}).get("name")) for tool in request.get("tools") or []
        ]

    def _answered(self, request: Mapping[str, Any]) -> bool:
        return any(msg.get("role") == "tool" for msg in request.get("messages") or [])

    def tool_call_body(
        self, name: str, tool_input: Mapping[str, Any], text: str | None = None
    ) -> dict[str, Any]:
        return tool_call_completion(name, tool_input, text=text)

    def text_body(self, text: str) -> dict[str, Any]:
        return text_completion(text)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fake OpenAI chat completions API.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=None, help="require this key (default: none)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    api = FakeOpenAIAPI(port=args.port, api_key=args.api_key)
    serve_until_stopped(api, lambda: api.base_url)


if __name__ == "__main__":
    main()
