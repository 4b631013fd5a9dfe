"""The payload codec: what Temporal stores of our payloads, compressed and, with a key, encrypted.

It is opt-in (`PAYLOAD_CODEC`, on by itself when `PAYLOAD_ENCRYPTION_KEY` is set): by
default payloads stay plain JSON, which the Web UI and the `temporal` CLI show without a
codec server. When it is on, every payload the SDK hands to the codec (workflow and
activity inputs and results, signals, queries, updates, memos, activity summaries) is
encoded in two layers:

1. **zlib**: the whole original payload (its metadata and data, serialized as the
   `Payload` protobuf) is compressed into a payload with metadata
   `encoding: binary/zlib`. Payloads under `MIN_COMPRESS_BYTES`, and those that do not
   get smaller, are not compressed (an activity summary such as `"backend: turn 2"`
   would only grow), so without a key they stay exactly as they were.
2. **AES-256-GCM** when `PAYLOAD_ENCRYPTION_KEY` is set: the payload from step 1 is
   serialized and sealed with the first configured key and a random 12-byte nonce into
   `encoding: binary/encrypted`, `encryption-key-id: <id>`,
   `encryption-cipher: AES256-GCM`, data `nonce || ciphertext+tag`. The key id is bound
   into the ciphertext as associated data, so it cannot be swapped.

Decoding, on or off, reverses the layers by their metadata and passes through every
payload it did not encode, so histories recorded with or without the codec replay.

Keys: `PAYLOAD_ENCRYPTION_KEY` holds one or more keys separated by commas, each
`id:base64` (32 random bytes, e.g. `python -m core.infrastructure.codec new-key 2025-06`) or a bare
base64 key whose id is then `k` + the first 8 hex digits of its SHA-256. The first key
encrypts; every listed key decrypts. To rotate, put the new key first and keep the old
ones until no history needs them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import sys
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

if TYPE_CHECKING:
    from core.infrastructure.settings import TemporalSettings

ENCODING = "encoding"
ENCODING_ZLIB = b"binary/zlib"
ENCODING_ENCRYPTED = b"binary/encrypted"
KEY_ID = "encryption-key-id"
CIPHER = "encryption-cipher"
CIPHER_AES_GCM = b"AES256-GCM"

KEY_BYTES = 32
NONCE_BYTES = 12
MIN_COMPRESS_BYTES = 128
MAX_DECODED_BYTES = 64 * 1024 * 1024
"""A decoded payload larger than this is refused (a zlib bomb cannot exhaust memory)."""

_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class CodecError(ValueError):
    """A payload that cannot be decoded, or a codec configuration that cannot work."""


class KeyConfigError(CodecError):
    """`PAYLOAD_ENCRYPTION_KEY` is malformed; the message says which entry and why."""


class DecryptionError(CodecError):
    """An encrypted payload the configured keys cannot open; the message names its key id."""


@dataclass(frozen=True)
class EncryptionKey:
    id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.match(self.id):
            raise KeyConfigError(
                f"encryption key id {self.id!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )
        if len(self.secret) != KEY_BYTES:
            raise KeyConfigError(
                f"encryption key {self.id!r} has {len(self.secret)} bytes; AES-256 needs {KEY_BYTES}"
            )


def fingerprint_id(secret: bytes) -> str:
    return "k" + hashlib.sha256(secret).hexdigest()[:8]


def _b64(text: str, where: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)  # padding is optional
    try:
        if "-" in text or "_" in text:  # the URL-safe alphabet
            return base64.b64decode(padded, altchars=b"-_", validate=True)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise KeyConfigError(f"{where} is not valid base64") from None


def parse_keys(value: str | None) -> list[EncryptionKey]:
    """`id:base64,...` or bare base64 keys, in order: the first one encrypts."""
    keys: list[EncryptionKey] = []
    for position, entry in enumerate(re.split(r"[,\s]+", (value or "").strip()), start=1):
        if not entry:
            continue
        where = f"PAYLOAD_ENCRYPTION_KEY entry {position}"
        if ":" in entry:
            key_id, _, encoded = entry.partition(":")
            key = EncryptionKey(key_id, _b64(encoded, f"{where} ({key_id!r})"))
        else:
            secret = _b64(entry, where)
            key = EncryptionKey(fingerprint_id(secret), secret)
        if any(k.id == key.id for k in keys):
            raise KeyConfigError(f"{where}: key id {key.id!r} is listed twice")
        keys.append(key)
    return keys


def new_key(key_id: str | None = None) -> str:
    """A fresh entry for `PAYLOAD_ENCRYPTION_KEY`: `id:base64` (bare base64 without an id)."""
    secret = base64.b64encode(os.urandom(KEY_BYTES)).decode()
    if key_id is None:
        return secret
    EncryptionKey(key_id, base64.b64decode(secret))  # validates the id
    return f"{key_id}:{secret}"


class OrchestratorCodec(PayloadCodec):
    """zlib compression, then AES-GCM with the first key; decoding by metadata, else pass-through.

    `encode_new=False` writes payloads as they are (the `PAYLOAD_CODEC=false` setting)
    while still decoding what was encoded before, so switching the codec off never
    strands a running workflow or an old history.
    """

    def __init__(
        self,
        keys: Iterable[EncryptionKey] = (),
        *,
        encode_new: bool = True,
        max_decoded_bytes: int = MAX_DECODED_BYTES,
    ) -> None:
        self.keys = list(keys)
        self._ciphers = {key.id: AESGCM(key.secret) for key in self.keys}
        self.encode_new = encode_new
        self.max_decoded_bytes = max_decoded_bytes

    @property
    def encrypts(self) -> bool:
        return self.encode_new and bool(self.keys)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    # --- one payload -----------------------------------------------------------------

    def encode_one(self, payload: Payload) -> Payload:
        if not self.encode_new:
            return payload
        result = self._compressed(payload)
        if self.keys:
            result = self._encrypted(result, self.keys[0])
        return result

    def decode_one(self, payload: Payload) -> Payload:
        # At most two layers of ours: encrypted around zlib around the original.
        for _ in range(3):
            encoding = payload.metadata.get(ENCODING)
            if encoding == ENCODING_ENCRYPTED:
                payload = self._decrypted(payload)
            elif encoding == ENCODING_ZLIB:
                payload = self._decompressed(payload)
            else:
                return payload
        raise CodecError("payload is nested deeper than this codec ever encodes")

    def _compressed(self, payload: Payload) -> Payload:
        serialized = payload.SerializeToString()
        if len(serialized) < MIN_COMPRESS_BYTES:
            return payload
        compressed = zlib.compress(serialized)
        if len(compressed) >= len(serialized):
            return payload
        return Payload(metadata={ENCODING: ENCODING_ZLIB}, data=compressed)

    def _decompressed(self, payload: Payload) -> Payload:
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(payload.data, self.max_decoded_bytes)
            if inflater.unconsumed_tail:
                raise CodecError(
                    f"compressed payload expands beyond {self.max_decoded_bytes} bytes; refused"
                )
            raw += inflater.flush()
        except zlib.error as exc:
            raise CodecError(f"compressed payload is corrupt: {exc}") from None
        if not inflater.eof:
            raise CodecError("compressed payload is truncated")
        return _parse(raw, "compressed")

    def _encrypted(self, payload: Payload, key: EncryptionKey) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[key.id].encrypt(
            nonce, payload.SerializeToString(), _associated_data(key.id)
        )
        return Payload(
            metadata={
                ENCODING: ENCODING_ENCRYPTED,
                KEY_ID: key.id.encode(),
                CIPHER: CIPHER_AES_GCM,
            },
            data=nonce + sealed,
        )

    def _decrypted(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher_name = payload.metadata.get(CIPHER, CIPHER_AES_GCM)
        if cipher_name != CIPHER_AES_GCM:
            raise DecryptionError(
                f"payload encrypted with key {key_id!r} uses cipher "
                f"{cipher_name.decode(errors='replace')!r}; this codec knows AES256-GCM only"
            )
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            if not self._ciphers:
                raise DecryptionError(
                    f"payload is encrypted with key {key_id!r} but PAYLOAD_ENCRYPTION_KEY is not set"
                )
            raise DecryptionError(
                f"payload is encrypted with key {key_id!r}, which is not in "
                f"PAYLOAD_ENCRYPTION_KEY (configured: {', '.join(self._ciphers)})"
            )
        if len(payload.data) < NONCE_BYTES + 16:
            raise DecryptionError(f"payload encrypted with key {key_id!r} is truncated")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            opened = cipher.decrypt(nonce, sealed, _associated_data(key_id))
        except InvalidTag:
            raise DecryptionError(
                f"payload encrypted with key {key_id!r} does not open with the configured "
                f"key {key_id!r}: the key differs from the one that encrypted it, or the "
                "payload was altered"
            ) from None
        return _parse(opened, "encrypted")


def codec_from_settings(settings: TemporalSettings) -> OrchestratorCodec:
    """The codec `PAYLOAD_CODEC` and `PAYLOAD_ENCRYPTION_KEY` describe (KeyConfigError if malformed).

    It decodes whatever it finds, so histories written while the codec was on replay
    through the default (plain) converter too.
    """
    secret = settings.payload_encryption_key
    keys = parse_keys(secret.get_secret_value() if secret is not None else None)
    return OrchestratorCodec(keys, encode_new=settings.encodes_payloads)


def _associated_data(key_id: str) -> bytes:
    return b"orchestrator-payload/v1:" + key_id.encode()


def _parse(raw: bytes, layer: str) -> Payload:
    inner = Payload()
    try:
        inner.ParseFromString(raw)
    except DecodeError:
        raise CodecError(f"the {layer} payload does not hold a payload") from None
    return inner


def main(argv: Sequence[str]) -> int:
    """`python -m core.infrastructure.codec new-key [ID]`: print a fresh `PAYLOAD_ENCRYPTION_KEY` entry."""
    if len(argv) in (1, 2) and argv[0] == "new-key":
        print(new_key(argv[1] if len(argv) == 2 else None))
        return 0
    print("usage: python -m core.infrastructure.codec new-key [ID]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
