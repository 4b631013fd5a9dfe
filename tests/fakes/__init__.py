"""Test doubles that speak real wire protocols over loopback."""

from .messages_api import (
    DropConnection,
    ErrorReply,
    FakeMessagesAPI,
    MessageReply,
    RawReply,
    RecordedRequest,
    Reply,
    ReplyLike,
    Responder,
    default_reply,
    error_body,
    message,
    text_message,
    tool_use_message,
    wants_note,
)

__all__ = [
    "DropConnection",
    "ErrorReply",
    "FakeMessagesAPI",
    "MessageReply",
    "RawReply",
    "RecordedRequest",
    "Reply",
    "ReplyLike",
    "Responder",
    "default_reply",
    "error_body",
    "message",
    "text_message",
    "tool_use_message",
    "wants_note",
]
