"""Requests per second and p50/p99 latency of the REST API under loopback load.

    python -m bench.api [--clients 50] [--requests 2000] [--starts 200]

Serves the API in its own uvicorn process (one event loop, as a single replica would run)
against a Temporal dev server and the database in `DATABASE_URL` (default: a fresh
SQLite file). A worker in this process runs the offline model slowly enough that the
started runs stay open, so `GET /runs/{id}/status` answers from the workflow query (the
expensive path) for one run, and from the database for a closed one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
from temporalio.service import RPCError

from bench.common import GOAL, dev_server
from core.infrastructure.settings import Settings
from core.persistence import tenancy
from core.persistence.db import Database
from offline import OfflineProvider
from workers.main import serving


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def load(
    clients: int, total: int, request: Callable[[httpx.AsyncClient, int], Awaitable[int]]
) -> tuple[float, list[float], int]:
    """`total` requests from `clients` concurrent clients: (seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def client_loop(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for i in counter:
            started = time.perf_counter()
            code = await request(http, i)
            latencies.append(time.perf_counter() - started)
            errors += code >= 400

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=120) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(clients)))
        return time.perf_counter() - started, latencies, errors


def report(name: str, seconds: float, latencies: list[float], errors: int) -> None:
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"{name:<34} {len(latencies) / seconds:8.1f} req/s   "
        f"p50 {cuts[49] * 1000:7.1f} ms   p99 {cuts[98] * 1000:7.1f} ms   "
        f"errors {errors}/{len(latencies)}"
    )


async def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError("the API process exited; see its output above")
            try:
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the API did not start in 30 s")


async def main(clients: int, requests: int, starts: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        url = os.environ.get("DATABASE_URL") or f"sqlite+aiosqlite:///{Path(scratch) / 'api.db'}"
        db = Database(url)
        org = await tenancy.create_org(db, f"bench-{int(time.time())}")
        key = (await tenancy.create_key(db, org.id, "bench", tenancy.OrgRole.ADMIN)).secret
        async with dev_server() as env:
            port = free_port()
            env_vars = {
                **os.environ,
                "DATABASE_URL": url,
                "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
                "RATE_LIMIT_PER_MINUTE": str(10**9),
            }
            api = subprocess.Popen(
                [
                    *(sys.executable, "-m", "uvicorn", "--factory", "api.app:create_app"),
                    *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
                ],
                env=env_vars,
            )
            base = f"http://127.0.0.1:{port}"
            headers = {"X-API-Key": key}
            try:
                await wait_ready(base, api)
                # Slow offline model: started runs stay open, so status is a live query.
                provider = OfflineProvider(latency_seconds=30.0)
                async with serving(env.client, db=db, provider=provider, settings=Settings()):
                    run_ids: list[str] = []

                    async def start(http: httpx.AsyncClient, i: int) -> int:
                        response = await http.post(
                            f"{base}/runs",
                            json={"goal": f"{GOAL} #{i}", "template": "sdlc"},
                            headers=headers,
                        )
                        if response.status_code == 202:
                            run_ids.append(response.json()["id"])
                        return response.status_code

                    async def status(http: httpx.AsyncClient, _i: int) -> int:
                        response = await http.get(
                            f"{base}/runs/{run_ids[0]}/status", headers=headers
                        )
                        return response.status_code

                    print(
                        f"REST API, {clients} concurrent clients, loopback, "
                        f"{os.cpu_count()} cores, database {url.split(':', 1)[0]}"
                    )
                    report("POST /runs", *await load(clients, starts, start))
                    report(
                        "GET /runs/{id}/status (running)", *await load(clients, requests, status)
                    )
                    async with httpx.AsyncClient() as http:
                        await http.post(f"{base}/runs/{run_ids[0]}/cancel", headers=headers)
                        for _ in range(100):
                            closed = await http.get(f"{base}/runs/{run_ids[0]}", headers=headers)
                            if closed.json().get("status") != "running":
                                break
                            await asyncio.sleep(0.2)
                    report("GET /runs/{id}/status (closed)", *await load(clients, requests, status))
                    for run_id in run_ids[1:]:  # the first was cancelled above
                        with contextlib.suppress(RPCError):  # finished on its own
                            await env.client.get_workflow_handle(f"run-{run_id}").terminate("bench")
            finally:
                api.terminate()
                api.wait(timeout=30)
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--starts", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.requests, args.starts))
