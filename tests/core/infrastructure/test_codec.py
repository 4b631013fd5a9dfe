"""The payload codec: compression and encryption of what Temporal stores, its codec server,
the Web UI decoding through it, and histories recorded before it still replaying."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from core.contracts import RunState, RunStatus, workflow_id_for
from core.infrastructure.codec import (
    MIN_COMPRESS_BYTES,
    CodecError,
    DecryptionError,
    EncryptionKey,
    KeyConfigError,
    OrchestratorCodec,
    codec_from_settings,
    fingerprint_id,
    new_key,
    parse_keys,
)
from core.infrastructure.local_stack import DevServer, free_port, temporal_binary
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import connect, data_converter, start_run
from core.persistence.db import Database
from core.persistence.tenancy import OrgRole
from offline import OfflineProvider
from tests.api_harness import ApiHarness, api_settings, serving_api, token
from tests.browser import browser_page
from tests.helpers import HISTORIES, make_plan
from workers.main import serving
from workflows.goal import GoalWorkflow

UI_ORIGIN = "http://127.0.0.1:8233"
KEY_A = new_key("key-a")
KEY_B = new_key("key-b")


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]


def json_payload(value: Any, **metadata: bytes) -> Payload:
    return Payload(
        metadata={"encoding": b"json/plain", **metadata}, data=json.dumps(value).encode()
    )


LARGE_JSON = json_payload(
    {"goal": "Build a lighthouse rota service", "notes": ["keep the lamp lit"] * 40},
    messageType=b"RunPlan",
)
BINARY = Payload(metadata={"encoding": b"binary/plain"}, data=os.urandom(600))
SMALL_JSON = json_payload("backend: turn 2")
EMPTY = Payload(metadata={"encoding": b"binary/null"})


def raw_payloads(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, bytes], bytes]]:
    """Every payload in a history as protobuf JSON: (path, metadata, data), base64 undone."""
    if isinstance(node, dict):
        metadata = node.get("metadata")
        if isinstance(metadata, dict) and "encoding" in metadata:
            yield (
                path,
                {k: base64.b64decode(v) for k, v in metadata.items()},
                base64.b64decode(node.get("data", "")),
            )
            return
        for key, value in node.items():
            if key != "searchAttributes":  # indexed by the server: never encoded
                yield from raw_payloads(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from raw_payloads(item, path)


SDK_BOOKKEEPING = re.compile(r"/markerRecordedEventAttributes/details/(data|patch-data)/payloads$")
"""Marker details the SDK core writes itself, outside the codec: a local activity's
sequence number, type and times, a patch id. Never our data; always readable."""


# --- the codec itself -----------------------------------------------------------------------


@pytest.mark.parametrize("keys", ["", KEY_A], ids=["compression", "encryption"])
async def test_round_trip_restores_every_payload_with_its_metadata(keys: str) -> None:
    codec = codec_from_settings(
        settings(PAYLOAD_CODEC="true", PAYLOAD_ENCRYPTION_KEY=keys or None).temporal
    )
    originals = [LARGE_JSON, BINARY, SMALL_JSON, EMPTY]
    encoded = await codec.encode(originals)
    assert await codec.decode(encoded) == originals

    large, binary, small, empty = encoded
    if keys:
        for payload in encoded:
            assert payload.metadata["encoding"] == b"binary/encrypted"
            assert payload.metadata["encryption-key-id"] == b"key-a"
            assert payload.metadata["encryption-cipher"] == b"AES256-GCM"
            assert b"lighthouse" not in payload.data and b"json/plain" not in payload.data
        # compressed inside: the sealed large payload is far smaller than the original
        assert len(large.data) < len(LARGE_JSON.data) // 4
    else:
        assert large.metadata["encoding"] == b"binary/zlib" and dict(large.metadata).keys() == {
            "encoding"
        }
        assert b"lighthouse" not in large.data
        assert len(large.data) < len(LARGE_JSON.data) // 4
        # random bytes do not compress and small payloads would grow: both stay as they were
        assert binary == BINARY
        assert len(SMALL_JSON.SerializeToString()) < MIN_COMPRESS_BYTES and small == SMALL_JSON
        assert empty == EMPTY


async def test_each_encryption_uses_a_fresh_nonce() -> None:
    codec = OrchestratorCodec(parse_keys(KEY_A))
    first, second = await codec.encode([LARGE_JSON, LARGE_JSON])
    assert first.data[:12] != second.data[:12] and first.data != second.data
    assert await codec.decode([first, second]) == [LARGE_JSON, LARGE_JSON]


async def test_payloads_it_did_not_encode_pass_through() -> None:
    plain = [
        LARGE_JSON,
        BINARY,
        SMALL_JSON,
        EMPTY,
        Payload(metadata={"encoding": b"json/protobuf"}),
    ]
    for codec in (OrchestratorCodec(), OrchestratorCodec(parse_keys(KEY_A))):
        assert await codec.decode(plain) == plain


async def test_codec_off_writes_plain_payloads_and_still_reads_encoded_ones() -> None:
    on = codec_from_settings(settings(PAYLOAD_ENCRYPTION_KEY=KEY_A).temporal)
    off = codec_from_settings(
        settings(PAYLOAD_CODEC="false", PAYLOAD_ENCRYPTION_KEY=KEY_A).temporal
    )
    assert await off.encode([LARGE_JSON]) == [LARGE_JSON]
    assert await off.decode(await on.encode([LARGE_JSON])) == [LARGE_JSON]


async def test_payloads_are_plain_by_default_and_a_key_or_the_setting_turns_the_codec_on() -> None:
    """Plain JSON unless asked: the Web UI and `temporal` read it with no codec server."""
    default = codec_from_settings(settings().temporal)
    assert not default.encode_new
    assert await default.encode([LARGE_JSON]) == [LARGE_JSON]
    assert codec_from_settings(settings(PAYLOAD_ENCRYPTION_KEY=KEY_A).temporal).encrypts
    assert not codec_from_settings(settings(PAYLOAD_ENCRYPTION_KEY=" ").temporal).encode_new
    compressing = codec_from_settings(settings(PAYLOAD_CODEC="true").temporal)
    [compressed] = await compressing.encode([LARGE_JSON])
    assert compressed.metadata["encoding"] == b"binary/zlib"
    # the default still reads what the codec wrote: switching it off strands nothing
    assert await default.decode([compressed]) == [LARGE_JSON]


async def test_rotation_encrypts_with_the_first_key_and_decrypts_with_any() -> None:
    before = codec_from_settings(settings(PAYLOAD_ENCRYPTION_KEY=KEY_A).temporal)
    after = codec_from_settings(settings(PAYLOAD_ENCRYPTION_KEY=f"{KEY_B}, {KEY_A}").temporal)
    old = (await before.encode([LARGE_JSON]))[0]
    new = (await after.encode([LARGE_JSON]))[0]
    assert new.metadata["encryption-key-id"] == b"key-b"
    assert await after.decode([old, new]) == [LARGE_JSON, LARGE_JSON]
    with pytest.raises(DecryptionError, match="'key-b'"):
        await before.decode([new])


async def test_a_wrong_key_is_a_clear_error_naming_the_key_id() -> None:
    sealed = (await OrchestratorCodec(parse_keys(KEY_A)).encode([LARGE_JSON]))[0]

    with pytest.raises(DecryptionError) as unknown:
        await OrchestratorCodec(parse_keys(KEY_B)).decode([sealed])
    assert str(unknown.value) == (
        "payload is encrypted with key 'key-a', which is not in PAYLOAD_ENCRYPTION_KEY "
        "(configured: key-b)"
    )

    impostor = new_key("key-a")  # same id, other secret
    with pytest.raises(DecryptionError, match="key 'key-a' does not open with the configured"):
        await OrchestratorCodec(parse_keys(impostor)).decode([sealed])

    with pytest.raises(DecryptionError, match="'key-a' but PAYLOAD_ENCRYPTION_KEY is not set"):
        await OrchestratorCodec().decode([sealed])

    tampered = Payload()
    tampered.CopyFrom(sealed)
    tampered.data = sealed.data[:-1] + bytes([sealed.data[-1] ^ 1])
    with pytest.raises(DecryptionError, match="or the payload was altered"):
        await OrchestratorCodec(parse_keys(KEY_A)).decode([tampered])

    relabelled = Payload()
    relabelled.CopyFrom(sealed)
    relabelled.metadata["encryption-key-id"] = b"key-b"  # the key id is authenticated data
    both = OrchestratorCodec(
        [*parse_keys(KEY_A), EncryptionKey("key-b", parse_keys(KEY_A)[0].secret)]
    )
    with pytest.raises(DecryptionError, match="'key-b'"):
        await both.decode([relabelled])


async def test_a_decompression_bomb_is_refused() -> None:
    big = Payload(metadata={"encoding": b"json/plain"}, data=b"0" * 100_000)
    bomb = (await OrchestratorCodec().encode([big]))[0]
    assert len(bomb.data) < 1_000
    with pytest.raises(CodecError, match="expands beyond 10000 bytes"):
        await OrchestratorCodec(max_decoded_bytes=10_000).decode([bomb])
    corrupt = Payload(metadata={"encoding": b"binary/zlib"}, data=b"not zlib at all")
    with pytest.raises(CodecError, match="compressed payload is corrupt"):
        await OrchestratorCodec().decode([corrupt])


def test_key_setting_is_parsed_and_checked() -> None:
    secret = b"\xfb\xff" * 16
    bare = base64.b64encode(secret).decode()
    urlsafe = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    assert "/" in bare and "_" in urlsafe
    assert [k.id for k in parse_keys(f"{KEY_B},\n {bare}")] == ["key-b", fingerprint_id(secret)]
    assert parse_keys(urlsafe)[0].secret == secret
    assert parse_keys(f"url:{urlsafe}")[0] == EncryptionKey("url", secret)
    assert parse_keys("") == [] and parse_keys(None) == []

    for value, problem in [
        ("a:not*base64!", "PAYLOAD_ENCRYPTION_KEY entry 1 ('a') is not valid base64"),
        (f"a:{base64.b64encode(b'short').decode()}", "has 5 bytes; AES-256 needs 32"),
        (f"{KEY_A},{KEY_A}", "entry 2: key id 'key-a' is listed twice"),
        (f"bad/id:{bare}", "key id 'bad/id' must be"),
    ]:
        with pytest.raises(KeyConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            parse_keys(value)


def test_new_key_command_prints_a_usable_entry() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "core.infrastructure.codec", "new-key", "2025-06"],
        capture_output=True,
        text=True,
        check=True,
    )
    [key] = parse_keys(made.stdout.strip())
    assert key.id == "2025-06" and len(key.secret) == 32


def test_data_converter_and_dev_server_follow_the_settings(tmp_path: Path) -> None:
    converter = data_converter(settings(PAYLOAD_ENCRYPTION_KEY=KEY_A))
    assert isinstance(converter.payload_codec, OrchestratorCodec)
    assert converter.payload_codec.encrypts
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class

    plain = DevServer(settings(ORCHESTRATOR_DATA_DIR=str(tmp_path))).command()
    assert "--ui-codec-endpoint" not in plain
    with_codec = DevServer(
        settings(
            ORCHESTRATOR_DATA_DIR=str(tmp_path),
            ORCHESTRATOR_UI_CODEC_ENDPOINT="http://127.0.0.1:8000/codec/",
        )
    ).command()
    flag = with_codec.index("--ui-codec-endpoint")
    assert with_codec[flag + 1] == "http://127.0.0.1:8000/codec"


# --- histories: old ones replay, new ones hold no plaintext ---------------------------------


BEFORE_CODEC = [p for p in HISTORIES if p.stem == "sdlc_offline_v1"]
"""Recorded before the codec existed."""
WITH_CODEC = [p for p in HISTORIES if p.stem == "sdlc_offline_v2"]
"""Recorded while the codec was on by default: its payloads are compressed. Histories
recorded since (tests/record_history.py, default settings) are plain JSON again."""


@pytest.mark.parametrize("path", BEFORE_CODEC, ids=[p.stem for p in BEFORE_CODEC])
async def test_histories_recorded_before_the_codec_replay_through_it(path: Path) -> None:
    history = WorkflowHistory.from_json(f"run-{path.stem}", path.read_text())
    # the recorded payloads are plain JSON: the codec must pass them through
    encodings = {m["encoding"] for _, m, _ in raw_payloads(json.loads(path.read_text()))}
    assert encodings and not encodings & {b"binary/zlib", b"binary/encrypted"}
    converter = data_converter(settings(PAYLOAD_ENCRYPTION_KEY=KEY_A))
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.parametrize("path", WITH_CODEC, ids=[p.stem for p in WITH_CODEC])
async def test_histories_recorded_with_the_codec_replay_through_the_plain_default(
    path: Path,
) -> None:
    history = WorkflowHistory.from_json(f"run-{path.stem}", path.read_text())
    encodings = {m["encoding"] for _, m, _ in raw_payloads(json.loads(path.read_text()))}
    assert b"binary/zlib" in encodings
    converter = data_converter(settings())
    assert isinstance(converter.payload_codec, OrchestratorCodec)
    assert not converter.payload_codec.encode_new
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


def test_the_plaintext_detector_sees_the_goal_in_a_history_without_codec() -> None:
    """The control for the check below: in an unencoded history the goal is readable."""
    recorded = json.loads(BEFORE_CODEC[0].read_text())
    started = recorded["events"][0]["workflowExecutionStartedEventAttributes"]
    goal = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))["goal"]
    assert any(goal.encode() in data for _, _, data in raw_payloads(recorded))
    assert any(b"app.py" in data for _, _, data in raw_payloads(recorded))


async def test_a_run_stores_only_encrypted_payloads_and_the_codec_client_reads_them(
    dev_client: Client, sqlite_db: Database, tmp_path: Path
) -> None:
    goal = "Build a lighthouse keeper rota service with shift swaps"
    target = dev_client.service_client.config.target_host
    encrypting = settings(
        PAYLOAD_ENCRYPTION_KEY=KEY_A, TEMPORAL_ADDRESS=target, ORCHESTRATOR_DATA_DIR=str(tmp_path)
    )
    client = await connect(encrypting)
    plan = make_plan(goal)
    async with serving(client, db=sqlite_db, provider=OfflineProvider(), settings=encrypting):
        handle = await start_run(client, plan)
        state = await handle.result()
    assert state.status == RunStatus.COMPLETED and state.goal == goal

    # Temporal's stored history, read by a client without the codec
    plain = await Client.connect(target, data_converter=pydantic_data_converter)
    raw_handle = plain.get_workflow_handle(workflow_id_for(plan.run_id))
    history = await raw_handle.fetch_history()
    everything = list(raw_payloads(json.loads(history.to_json())))
    ours = [(m, d) for path, m, d in everything if not SDK_BOOKKEEPING.search(path)]
    bookkeeping = [(m, d) for path, m, d in everything if SDK_BOOKKEEPING.search(path)]
    assert len(ours) > 20
    assert {m["encoding"] for m, _ in ours} == {b"binary/encrypted"}
    assert {m["encryption-key-id"] for m, _ in ours} == {b"key-a"}
    for _, data in ours + bookkeeping:
        assert goal.encode() not in data and b"lighthouse" not in data and b"app.py" not in data
    with pytest.raises(KeyError, match="Unknown payload encoding binary/encrypted"):
        await plain.get_workflow_handle(handle.id, result_type=RunState).result()

    # the codec's client reads the result; a client with other keys says which key it lacks
    assert (await client.get_workflow_handle(handle.id, result_type=RunState).result()) == state
    stranger = await connect(settings(TEMPORAL_ADDRESS=target))
    with pytest.raises(DecryptionError, match="'key-a' but PAYLOAD_ENCRYPTION_KEY is not set"):
        await stranger.get_workflow_handle(handle.id, result_type=RunState).result()

    # the encrypted history replays through the codec
    replayer = Replayer(workflows=[GoalWorkflow], data_converter=data_converter(encrypting))
    replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None


# --- the codec server over HTTP ---------------------------------------------------------------


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def from_json(body: dict[str, Any]) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in p.get("metadata", {}).items()},
            data=base64.b64decode(p.get("data", "")),
        )
        for p in body["payloads"]
    ]


OPERATOR = {"Authorization": "Bearer operator-token"}
CODEC_HEADERS = {"X-Namespace": "default"}


async def test_codec_server_encodes_and_decodes_like_the_workers(
    sqlite_db: Database, dev_client: Client
) -> None:
    configured = api_settings(PAYLOAD_ENCRYPTION_KEY=KEY_A)
    workers_codec = codec_from_settings(configured.temporal)
    async with serving_api(sqlite_db, dev_client, configured, with_workers=False) as api:
        http = api.http({**OPERATOR, **CODEC_HEADERS})
        originals = [LARGE_JSON, BINARY, SMALL_JSON, EMPTY]

        encoded = await http.post("/codec/encode", json=as_json(originals))
        assert encoded.status_code == 200, encoded.text
        over_http = from_json(encoded.json())
        assert {p.metadata["encoding"] for p in over_http} == {b"binary/encrypted"}
        assert await workers_codec.decode(over_http) == originals

        from_workers = await workers_codec.encode(originals)
        decoded = await http.post("/codec/decode", json=as_json([*from_workers, SMALL_JSON]))
        assert decoded.status_code == 200, decoded.text
        assert from_json(decoded.json()) == [*originals, SMALL_JSON]

        assert (await http.post("/codec/decode", json={"payloads": []})).json() == {"payloads": []}

        bad_json = await http.post("/codec/decode", content=b"{not json")
        assert bad_json.status_code == 400 and "not Payloads JSON" in bad_json.json()["detail"]

        foreign_key = await OrchestratorCodec(parse_keys(KEY_B)).encode([LARGE_JSON])
        undecodable = await http.post("/codec/decode", json=as_json(foreign_key))
        assert undecodable.status_code == 400
        assert "'key-b', which is not in PAYLOAD_ENCRYPTION_KEY" in undecodable.json()["detail"]

        too_big = await http.post("/codec/decode", content=b" " * (16 * 1024 * 1024 + 1))
        assert too_big.status_code == 413

        schema = (await http.get("/openapi.json")).json()
        assert "CodecPayloads" in schema["components"]["schemas"]
        assert {"/codec/encode", "/codec/decode"} <= schema["paths"].keys()


async def decode_status(api: ApiHarness, headers: dict[str, str]) -> int:
    sealed = await OrchestratorCodec(parse_keys(KEY_A)).encode([LARGE_JSON])
    response = await api.http(headers).post("/codec/decode", json=as_json(sealed))
    return response.status_code


async def test_with_a_key_the_codec_server_serves_the_operator_only(
    sqlite_db: Database, dev_client: Client
) -> None:
    """One key encrypts every tenant's payloads: an organization admin who could call the
    codec would decrypt other organizations' goals and artifacts from their histories."""
    await sqlite_db.ensure_schema()
    configured = api_settings(PAYLOAD_ENCRYPTION_KEY=KEY_A)
    async with serving_api(sqlite_db, dev_client, configured, with_workers=False) as api:
        admin = await api.tenant(role=OrgRole.ADMIN)
        member = await api.key(admin, OrgRole.MEMBER)

        assert await decode_status(api, {}) == 401
        assert await decode_status(api, {"Origin": UI_ORIGIN}) == 401  # UI opt-in not set
        assert await decode_status(api, {"Authorization": "Bearer wrong-token"}) == 401
        assert await decode_status(api, OPERATOR) == 200
        assert await decode_status(api, {"X-API-Key": "operator-token"}) == 200
        for organization_credentials in (
            admin.headers,
            {"Authorization": f"Bearer {admin.key.secret}"},
            token(admin.org_id, "alice", role="admin"),
            member,
        ):
            assert await decode_status(api, organization_credentials) == 403
        for path in ("/codec/decode", "/codec/encode"):
            refused = await api.http(admin.headers).post(path, json=as_json([LARGE_JSON]))
            assert refused.status_code == 403 and "operator token" in refused.json()["detail"]
        refused = await api.http().post("/codec/encode", json=as_json([LARGE_JSON]))
        assert refused.status_code == 401 and "operator token" in refused.json()["detail"]


async def test_the_local_ui_opt_in_serves_loopback_callers_from_the_ui_origin_only(
    sqlite_db: Database, dev_client: Client
) -> None:
    configured = api_settings(
        PAYLOAD_ENCRYPTION_KEY=KEY_A, ORCHESTRATOR_UI_CODEC_ENDPOINT="http://127.0.0.1:8000/codec"
    )
    async with serving_api(sqlite_db, dev_client, configured, with_workers=False) as api:
        assert await decode_status(api, {"Origin": UI_ORIGIN}) == 200
        assert await decode_status(api, {"Origin": "http://localhost:8233"}) == 200
        assert await decode_status(api, {}) == 200  # a local CLI sends no Origin
        # a web page elsewhere (even one rebound to 127.0.0.1) sends its own Origin
        assert await decode_status(api, {"Origin": "http://evil.example"}) == 401
        assert await decode_status(api, {"Origin": "http://127.0.0.1:9999"}) == 401


async def test_without_a_key_the_codec_server_only_decompresses_and_needs_no_credentials(
    sqlite_db: Database, dev_client: Client
) -> None:
    async with serving_api(sqlite_db, dev_client, api_settings(), with_workers=False) as api:
        compressed = await OrchestratorCodec().encode([LARGE_JSON])
        decoded = await api.http().post("/codec/decode", json=as_json(compressed))
        assert decoded.status_code == 200
        assert from_json(decoded.json()) == [LARGE_JSON]
        sealed = await OrchestratorCodec(parse_keys(KEY_A)).encode([LARGE_JSON])
        refused = await api.http().post("/codec/decode", json=as_json(sealed))
        assert refused.status_code == 400
        assert "'key-a' but PAYLOAD_ENCRYPTION_KEY is not set" in refused.json()["detail"]


async def test_cors_preflight_is_answered_for_the_ui_origin_and_refused_for_another(
    sqlite_db: Database, dev_client: Client
) -> None:
    async with serving_api(sqlite_db, dev_client, api_settings(), with_workers=False) as api:
        http = api.http()

        def preflight(origin: str, path: str = "/codec/decode") -> Any:
            return http.options(
                path,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type,x-namespace",
                },
            )

        allowed = await preflight(UI_ORIGIN)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
        assert "POST" in allowed.headers["access-control-allow-methods"]
        allowed_headers = allowed.headers["access-control-allow-headers"].lower()
        assert "x-namespace" in allowed_headers and "content-type" in allowed_headers
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert (await preflight("http://localhost:8233", "/codec/encode")).status_code == 200

        refused = await preflight("http://evil.example")
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers

        # CORS covers the codec only: the rest of the API stays same-origin
        elsewhere = await preflight(UI_ORIGIN, "/healthz")
        assert "access-control-allow-origin" not in elsewhere.headers

        posted = await http.post(
            "/codec/decode", json={"payloads": []}, headers={"Origin": UI_ORIGIN, **CODEC_HEADERS}
        )
        assert posted.headers["access-control-allow-origin"] == UI_ORIGIN


async def test_temporal_cli_shows_decoded_payloads_through_the_codec_server(
    dev_client: Client, sqlite_db: Database, tmp_path: Path
) -> None:
    """`temporal workflow show --codec-endpoint ... --codec-auth ...`: the CLI as the protocol's client."""
    target = dev_client.service_client.config.target_host
    goal = "Build a tide table service for harbour pilots"
    configured = api_settings(PAYLOAD_ENCRYPTION_KEY=KEY_A, TEMPORAL_ADDRESS=target)
    client = await connect(configured)
    plan = make_plan(goal)
    await start_run(client, plan)  # no worker: the input is in the first event
    try:
        async with serving_api(sqlite_db, dev_client, configured, with_workers=False) as api:

            def shown_payloads(*extra: str) -> list[tuple[dict[str, bytes], bytes]]:
                shown = subprocess.run(
                    [
                        *(temporal_binary(), "workflow", "show", "--address", target),
                        *("--workflow-id", workflow_id_for(plan.run_id), "--output", "json"),
                        *extra,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert shown.returncode == 0, shown.stderr
                return [(m, d) for _, m, d in raw_payloads(json.loads(shown.stdout))]

            encoded = await asyncio.to_thread(shown_payloads)
            assert {m["encoding"] for m, _ in encoded} == {b"binary/encrypted"}
            assert not any(goal.encode() in data for _, data in encoded)

            decoded = await asyncio.to_thread(
                shown_payloads,
                *("--codec-endpoint", f"{api.base_url}/codec"),
                *("--codec-auth", "Bearer operator-token"),
            )
            assert {m["encoding"] for m, _ in decoded} == {b"json/plain"}
            # the run's input, among the payloads that hold the goal (its summary does too)
            holding_goal = [json.loads(d) for _, d in decoded if goal.encode() in d]
            assert any(isinstance(p, dict) and p.get("goal") == goal for p in holding_goal)
    finally:
        await client.get_workflow_handle(workflow_id_for(plan.run_id)).terminate("test done")


# --- the Web UI decodes through the codec server ------------------------------------------------


async def test_the_web_ui_shows_the_decoded_input_of_an_encrypted_run(
    sqlite_db: Database, dev_client: Client, tmp_path: Path
) -> None:
    goal = "Build a lighthouse keeper rota service zq7"
    configured = api_settings(
        PAYLOAD_ENCRYPTION_KEY=KEY_A,
        ORCHESTRATOR_DATA_DIR=str(tmp_path),
        ORCHESTRATOR_TEMPORAL_PORT=free_port(),
        ORCHESTRATOR_UI_PORT=free_port(),
    )
    async with serving_api(sqlite_db, dev_client, configured, with_workers=False) as api:
        # The API is up on its port; now the setting can name it. The app holds this same
        # settings object, so its local-UI rule sees the opt-in too.
        configured.temporal.ui_codec_endpoint = f"{api.base_url}/codec"
        server = DevServer(configured)
        await server.start()
        try:
            client = await connect(configured)
            plan = make_plan(goal)
            handle = await start_run(client, plan)
            history = await handle.fetch_history()
            assert not any(
                goal.encode() in d for _, _, d in raw_payloads(json.loads(history.to_json()))
            )

            decode_calls: list[tuple[int, str | None]] = []
            async with browser_page(tmp_path / "chromium") as page:
                page.on(
                    "response",
                    lambda r: (
                        decode_calls.append((r.status, r.request.headers.get("x-namespace")))
                        if r.url.startswith(f"{api.base_url}/codec/decode")
                        and r.request.method == "POST"
                        else None
                    ),
                )
                await page.goto(
                    f"{configured.temporal.ui_url}/namespaces/default/workflows/{handle.id}"
                )
                await page.get_by_text(goal).first.wait_for(timeout=60_000)
            assert decode_calls and all(call == (200, "default") for call in decode_calls)
            await handle.terminate("test done")
        finally:
            server.stop()
