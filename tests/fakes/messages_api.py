"""A loopback fake of the Anthropic Messages API (``POST /v1/messages``).

Real HTTP on 127.0.0.1 with an ephemeral port, served from a background thread, so the
real ``anthropic`` SDK (or any HTTP client, in this or another process) can talk to it::

    with FakeMessagesAPI() as api:
        api.enqueue_error(429, "slow down", headers={"retry-after": "2"})
        api.enqueue_text("hello")
        client = AsyncAnthropic(api_key="test-key", base_url=api.base_url, max_retries=0)
        ...
        assert api.requests[-1].body["model"] == "claude-sonnet-4-5"

Replies come from the scripted queue first (FIFO, shared by all callers), then from
``api.responder``. Both may produce a success body (a full or partial message dict; missing
fields are filled in) or a ``MessageReply`` / ``ErrorReply`` / ``DropConnection`` /
``DropMidResponse`` / ``RawReply``. ``api.replies`` lists every answer sent in full, so a
test can add up the usage the server actually reported. Requests are checked the way the
real API checks them where that is cheap, so a malformed request fails here as it would in
production instead of passing silently.

The server machinery is ``LoopbackAPI`` (``tests/fakes/loopback.py``), shared with the
OpenAI-compatible fake: the replies a test scripts (``ErrorReply``, ``DropConnection``...)
and what it reads back (``RecordedRequest``, ``role_of``...) are imported from there. This
module adds the Messages API's wire format.

Stdlib only, so it also runs standalone for manual or cross-process use:
``python -m tests.fakes.messages_api [--port N]`` prints its base URL and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from tests.fakes.loopback import (
    ErrorReply,
    InvalidRequest,
    LoopbackAPI,
    RawReply,
    Reply,
    ReplyLike,
    Responder,
    api_key_of,
    estimate_tokens,
    new_id,
    serve_until_stopped,
)

__all__ = [
    "BAD_API_KEY",
    "COUNT_TOKENS_PATH",
    "MESSAGES_PATH",
    "FakeMessagesAPI",
    "PromptCache",
    "error_body",
    "error_type",
    "message",
    "text_message",
    "tool_use_message",
]

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
BAD_API_KEY = "bad-key"

# The error `type` the real API uses for each status; anything else falls back by class.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Top-level request fields the real API knows; anything else is rejected like the API does
# ("Extra inputs are not permitted"), which catches our own fields leaking onto the wire.
KNOWN_REQUEST_FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "tools",
        "tool_choice",
        "metadata",
        "stop_sequences",
        "stream",
        "temperature",
        "top_k",
        "top_p",
        "thinking",
        "service_tier",
        "container",
        "mcp_servers",
        "context_management",
        "output_config",
        "output_format",
        "cache_control",
        "inference_geo",
        "speed",
        "diagnostics",
        "user_profile_id",
        "workspace_id",
    }
)


# --------------------------------------------------------------------------- builders


def error_body(error_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type, "message": message}}


def error_type(status: int) -> str:
    """The error ``type`` the real API answers ``status`` with."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def message(
    content: list[dict[str, Any]],
    *,
    stop_reason: str | None = None,
    model: str | None = None,
    usage: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """A partial message body; ``FakeMessagesAPI`` fills whatever is left out."""
    body: dict[str, Any] = {"content": content}
    if stop_reason is not None:
        body["stop_reason"] = stop_reason
    if model is not None:
        body["model"] = model
    if usage is not None:
        body["usage"] = dict(usage)
    return body


def text_message(text: str, **kwargs: Any) -> dict[str, Any]:
    return message([{"type": "text", "text": text}], **kwargs)


def tool_use_message(
    name: str,
    tool_input: Mapping[str, Any],
    *,
    text: str | None = None,
    tool_use_id: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "text", "text": text})
    content.append(
        {
            "type": "tool_use",
            "id": tool_use_id or new_id("toolu"),
            "name": name,
            "input": dict(tool_input),
        }
    )
    return message(content, **kwargs)


def _complete_message(body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in every field the wire format requires that a scripted body left out."""
    content = list(body.get("content") or [{"type": "text", "text": "OK"}])
    has_tool_use = any(block.get("type") == "tool_use" for block in content)
    estimated = {
        "input_tokens": _input_tokens(request),
        "output_tokens": estimate_tokens(content),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    return {
        "id": body.get("id") or new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or request.get("model") or "claude-sonnet-4-5",
        "content": content,
        "stop_reason": body.get("stop_reason") or ("tool_use" if has_tool_use else "end_turn"),
        "stop_sequence": body.get("stop_sequence"),
        "usage": {**estimated, **dict(body.get("usage") or {})},
    }


def _has_tool_result(request: Mapping[str, Any]) -> bool:
    for msg in request.get("messages") or []:
        content = msg.get("content")
        if isinstance(content, list) and any(
            isinstance(block, dict) and block.get("type") == "tool_result" for block in content
        ):
            return True
    return False


# --------------------------------------------------------------------------- validation


def _validate_headers(headers: Mapping[str, str]) -> None:
    api_key = api_key_of(headers)
    if not api_key:
        raise InvalidRequest(401, "x-api-key header is required")
    if api_key == BAD_API_KEY:
        raise InvalidRequest(401, "invalid x-api-key")
    if not headers.get("anthropic-version"):
        raise InvalidRequest(400, "anthropic-version: header is required")


def _validate_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest(400, "request body must be a JSON object")
    extra = sorted(set(body) - KNOWN_REQUEST_FIELDS)
    if extra:
        raise InvalidRequest(400, f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest(400, "model: Field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
        raise InvalidRequest(400, "max_tokens: Field required")
    if body.get("stream"):
        raise InvalidRequest(400, "stream: the fake Messages API does not stream")
    system = body.get("system")
    if system is not None and not isinstance(system, str | list):
        raise InvalidRequest(400, "system: Input should be a valid string or list")
    for i, tool in enumerate(body.get("tools") or []):
        _validate_tool(i, tool)
    _validate_messages(body.get("messages"))
    return body


ANTHROPIC_DEFINED_TOOLS = {
    # type -> (the name the API demands, the options it accepts)
    "text_editor_20250728": ("str_replace_based_edit_tool", {"max_characters", "cache_control"}),
    "bash_20250124": ("bash", {"cache_control"}),
}


def _validate_tool(i: int, tool: Any) -> None:
    """Custom tools need a schema; Anthropic-defined ones a fixed name and their own options."""
    if not isinstance(tool, dict) or not tool.get("name"):
        raise InvalidRequest(400, f"tools.{i}.name: Field required")
    kind = tool.get("type", "custom")
    if kind == "custom":
        if not isinstance(tool.get("input_schema"), dict):
            raise InvalidRequest(400, f"tools.{i}.input_schema: Field required")
        return
    if kind not in ANTHROPIC_DEFINED_TOOLS:
        raise InvalidRequest(400, f"tools.{i}.type: unknown tool type {kind!r}")
    name, options = ANTHROPIC_DEFINED_TOOLS[kind]
    if tool["name"] != name:
        raise InvalidRequest(400, f"tools.{i}.name: Input should be '{name}'")
    extra = sorted(set(tool) - {"type", "name", *options})
    if extra:
        raise InvalidRequest(400, f"tools.{i}.{extra[0]}: Extra inputs are not permitted")
    limit = tool.get("max_characters")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InvalidRequest(400, f"tools.{i}.max_characters: Input should be a positive integer")


def _tool_block_ids(content: Any, block_type: str, key: str) -> list[str]:
    if not isinstance(content, list):
        return []
    return [
        str(block.get(key))
        for block in content
        if isinstance(block, dict) and block.get("type") == block_type
    ]


def _validate_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest(400, "messages: Field required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
            raise InvalidRequest(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
        content = msg.get("content")
        if not isinstance(content, str | list):
            raise InvalidRequest(400, f"messages.{i}.content: Field required")
        for j, block in enumerate(content if isinstance(content, list) else []):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise InvalidRequest(400, f"messages.{i}.content.{j}.type: Field required")
            if block["type"] == "text" and not isinstance(block.get("text"), str):
                raise InvalidRequest(400, f"messages.{i}.content.{j}.text: Field required")
    # The pairing rule is what agent loops most often get wrong, so check it as the API does.
    for i, msg in enumerate(messages):
        tool_use_ids = _tool_block_ids(msg["content"], "tool_use", "id")
        if msg["role"] == "assistant" and tool_use_ids:
            following = messages[i + 1] if i + 1 < len(messages) else None
            answered = (
                set(_tool_block_ids(following["content"], "tool_result", "tool_use_id"))
                if following is not None and following["role"] == "user"
                else set()
            )
            missing = [tool_id for tool_id in tool_use_ids if tool_id not in answered]
            if missing:
                raise InvalidRequest(
                    400,
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message.",
                )
        result_ids = _tool_block_ids(msg["content"], "tool_result", "tool_use_id")
        if result_ids:
            previous = messages[i - 1] if i > 0 else None
            offered = (
                set(_tool_block_ids(previous["content"], "tool_use", "id"))
                if previous is not None and previous["role"] == "assistant"
                else set()
            )
            unexpected = [tool_id for tool_id in result_ids if tool_id not in offered]
            if msg["role"] != "user" or unexpected:
                raise InvalidRequest(
                    400,
                    f"messages.{i}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{', '.join(unexpected or result_ids)}. Each `tool_result` block must have "
                    "a corresponding `tool_use` block in the previous message.",
                )


# --------------------------------------------------------------------------- server


class PromptCache:
    """The Messages API's prompt cache, as far as a client can observe it.

    The request is read as one sequence of blocks in the API's prefix order: tools, system,
    then every message's content blocks. A block with ``cache_control`` is a breakpoint.
    A breakpoint whose prefix is at least ``min_tokens`` long writes that prefix to the
    cache; a request reads the longest cached prefix found at a breakpoint or up to
    ``LOOKBACK`` blocks before one. Token figures use ``estimate_tokens``, so cache read +
    cache write + uncached input add up to the request's estimated input tokens.
    """

    LOOKBACK = 20

    def __init__(self, min_tokens: int = 1024) -> None:
        self.min_tokens = min_tokens
        self._prefixes: set[str] = set()
        self._lock = threading.Lock()

    def use(self, request: Mapping[str, Any]) -> tuple[int, int]:
        """(cache read, cache write) tokens of this request; its breakpoints are stored."""
        blocks, breakpoints = _prefix_blocks(request)
        if not breakpoints:
            return 0, 0
        total = _input_tokens(request)
        prefixes = [_prefix_key(blocks[: i + 1]) for i in range(len(blocks))]
        sizes = [estimate_tokens(blocks[: i + 1]) for i in range(len(blocks))]
        with self._lock:
            hits = [
                i
                for b in breakpoints
                for i in range(max(0, b - self.LOOKBACK + 1), b + 1)
                if prefixes[i] in self._prefixes
            ]
            read = min(total, sizes[max(hits)]) if hits else 0
            last = breakpoints[-1]
            written = 0
            if sizes[last] >= self.min_tokens:
                written = max(0, min(total, sizes[last]) - read)
            for b in breakpoints:
                if sizes[b] >= self.min_tokens:
                    self._prefixes.add(prefixes[b])
        return read, written


def _prefix_blocks(request: Mapping[str, Any]) -> tuple[list[Any], list[int]]:
    blocks: list[Any] = []
    breakpoints: list[int] = []

    def add(block: Any) -> None:
        if isinstance(block, dict) and "cache_control" in block:
            breakpoints.append(len(blocks))
            block = {k: v for k, v in block.items() if k != "cache_control"}
        blocks.append(block)

    for tool in request.get("tools") or []:
        add(tool)
    system = request.get("system")
    for block in [system] if isinstance(system, str) else system or []:
        add(block)
    for message in request.get("messages") or []:
        content = message.get("content")
        for block in [content] if isinstance(content, str) else content or []:
            add(block)
    return blocks, breakpoints


def _prefix_key(blocks: list[Any]) -> str:
    return hashlib.sha256(json.dumps(blocks, sort_keys=True).encode()).hexdigest()


def _input_tokens(request: Mapping[str, Any]) -> int:
    return estimate_tokens(
        [request.get("system", ""), request.get("messages", []), request.get("tools", [])]
    )


class FakeMessagesAPI(LoopbackAPI):
    """The fake Messages API. Use as a context manager, or call ``start()`` and ``close()``.

    ``base_url`` is what the SDK takes; it appends ``/v1/messages`` itself.
    """

    author = "the fake Messages API"

    def enqueue(self, *replies: ReplyLike) -> None:
        """Script the next replies, served in order before ``responder`` is consulted.

        A plain mapping is a success body; missing ``id``, ``model`` (echoes the request),
        ``stop_reason`` (``tool_use`` if there is a tool_use block, else ``end_turn``) and
        ``usage`` fields (estimated from the request size) are filled in.
        """
        super().enqueue(*replies)

    def enqueue_text(self, text: str, **kwargs: Any) -> None:
        """Kwargs as for ``message()``: stop_reason, model, usage."""
        self.enqueue(text_message(text, **kwargs))

    def enqueue_tool_use(self, name: str, tool_input: Mapping[str, Any], **kwargs: Any) -> None:
        """Kwargs as for ``tool_use_message()``: text, tool_use_id, stop_reason, model, usage."""
        self.enqueue(tool_use_message(name, tool_input, **kwargs))

    def enqueue_overloaded(self, message: str = "Overloaded", **headers: str) -> None:
        """The 529 ``overloaded_error`` the API answers when it is over capacity."""
        self.enqueue_error(529, message, headers=headers)

    def __init__(self, responder: Responder | None = None, *, port: int = 0) -> None:
        super().__init__(responder, port=port)
        self.prompt_cache = PromptCache()
        """What the server's prompt cache holds; it sets the cache fields of every usage."""

    def _reply_for(self, method: str, path: str, headers: Mapping[str, str], body: Any) -> Reply:
        if path == COUNT_TOKENS_PATH and method == "POST":
            # Answered at once, never from the script: counting is not a model call.
            try:
                _validate_headers(headers)
                request = _validate_body({"max_tokens": 1, **(body or {})})
            except InvalidRequest as invalid:
                return invalid.reply
            counted = {"input_tokens": _input_tokens(request)}
            return RawReply(200, json.dumps(counted).encode(), "application/json")
        return super()._reply_for(method, path, headers, body)

    def _validate(
        self, method: str, path: str, headers: Mapping[str, str], body: Any
    ) -> dict[str, Any]:
        if method != "POST" or path != MESSAGES_PATH:
            raise InvalidRequest(404, f"Not found: {method} {path}")
        _validate_headers(headers)
        return _validate_body(body)

    def _success_body(self, body: Mapping[str, Any], request: Mapping[str, Any]) -> dict[str, Any]:
        completed = _complete_message(body, request)
        if "usage" not in body:
            # Scripted usage is the test's word; otherwise the cache decides, as it does
            # on the real API.
            read, written = self.prompt_cache.use(request)
            usage = completed["usage"]
            usage["cache_read_input_tokens"] = read
            usage["cache_creation_input_tokens"] = written
            usage["input_tokens"] = max(0, usage["input_tokens"] - read - written)
        return completed

    def _error_body(self, reply: ErrorReply) -> dict[str, Any]:
        return error_body(reply.error_type or error_type(reply.status), reply.message)

    def _tool_names(self, request: Mapping[str, Any]) -> list[str]:
        return [tool.get("name") for tool in request.get("tools") or []]

    def _answered(self, request: Mapping[str, Any]) -> bool:
        return _has_tool_result(request)

    def tool_call_body(
        self, name: str, tool_input: Mapping[str, Any], text: str | None = None
    ) -> dict[str, Any]:
        return tool_use_message(name, tool_input, text=text)

    def text_body(self, text: str) -> dict[str, Any]:
        return text_message(text)


def main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake Anthropic Messages API.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(list(argv) if argv is not None else None)
    api = FakeMessagesAPI(port=args.port)
    serve_until_stopped(api, lambda: api.base_url)


if __name__ == "__main__":
    main()
