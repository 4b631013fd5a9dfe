"""Property-based requests from the OpenAPI schema (schemathesis): no input makes a 5xx.

`tests/schemathesis_hooks.py` puts hostile values (NUL, lone surrogates, NaN, integers past
64 bits, moments past the year 9999) into half the requests, and checks that every answer
is a success or a JSON client error.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
import uuid
from pathlib import Path

import jwt

from tests.api_harness import ApiHarness
from tests.helpers import TESTS

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
HOOKS = TESTS / "schemathesis_hooks.py"
CHECKS = "not_a_server_error,json_client_error_or_success,content_type_conformance"


def admin_jwt(api: ApiHarness, org_id: str) -> str:
    """Credentials the run cannot take away from itself: it revokes whatever API keys it
    lists, and everything after that would only ever meet a 401."""
    settings = api.settings
    assert settings.api.jwt_secret is not None
    claims = {
        "sub": f"schemathesis-{uuid.uuid4().hex}",
        "org": org_id,
        "role": "admin",
        "iss": settings.api.jwt_issuer,
        "aud": settings.api.jwt_audience,
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, settings.api.jwt_secret.get_secret_value(), algorithm="HS256")


async def test_no_generated_request_gets_a_server_error(api: ApiHarness, tmp_path: Path) -> None:
    tenant = await api.tenant()
    process = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: Bearer {admin_jwt(api, tenant.org_id)}",
        "--max-examples",
        "8",
        "--request-timeout",
        "30",
        # the event stream stays open while a run lives; the codec server is tested apart
        "--exclude-path-regex",
        "/events$|^/codec/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,  # schemathesis keeps its cache in the working directory
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=280)
    report = output.decode()
    assert process.returncode == 0, report[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report[-4000:]
    assert int(counts[1]) > 100 and counts[1] == counts[2], report[-4000:]
