"""Bodies of the codec server, in Temporal's codec server protocol (protobuf JSON).

The routes read and write the protobuf JSON themselves; these models only describe it in
the OpenAPI schema.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class CodecPayload(BaseModel):
    metadata: dict[str, str] = Field(
        default_factory=dict, description="Metadata values, base64 (e.g. `encoding`)."
    )
    data: str = Field(default="", description="The payload's bytes, base64.")


class CodecPayloads(BaseModel):
    """A `temporal.api.common.v1.Payloads` message in protobuf JSON."""

    payloads: list[CodecPayload] = Field(default_factory=list)
