"""Property-based requests from the OpenAPI schema (schemathesis): no input makes a 5xx."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from tests.api_harness import ApiHarness

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")


async def test_no_generated_request_gets_a_server_error(api: ApiHarness) -> None:
    tenant = await api.tenant()
    process = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--header",
        f"X-API-Key: {tenant.key.secret}",
        "--max-examples",
        "8",
        "--request-timeout",
        "30",
        # the event stream stays open while a run lives; the codec server is tested apart
        "--exclude-path-regex",
        "/events$|^/codec/",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=280)
    report = output.decode()
    assert process.returncode == 0, report[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report[-4000:]
    assert int(counts[1]) > 100 and counts[1] == counts[2], report[-4000:]
