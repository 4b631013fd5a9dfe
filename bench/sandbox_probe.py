"""Runs inside the sandbox: start a deliverable's entry points and smoke-request its API.

`bench.executability` copies this file into a sandbox session and runs it there, so it
imports nothing of the project (the sandbox sees only the interpreter and the workspace).

    python sandbox_probe.py SPEC.json                 the whole probe
    python sandbox_probe.py --serve MODULE ATTR FACTORY TIMEOUT    one API smoke test

Both print their result as one JSON line on stdout.

Each entry point and each API runs in a subprocess of its own, so two modules of the same
name (`app` in two folders) never meet in one interpreter.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

OUTPUT_TAIL = 600


def tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= OUTPUT_TAIL else "..." + text[-OUTPUT_TAIL:]


def run_program(
    program: str, argv: list[str], cwd: str, pythonpath: str, timeout: float
) -> dict[str, Any]:
    """Run `python` (this interpreter) or `node` with `argv` in `cwd`: passed when it exits 0
    in time."""
    executable = sys.executable if program == "python" else shutil.which(program)
    if executable is None:
        return {"passed": False, "detail": f"{program} is not installed in the sandbox"}
    env = {**os.environ, "PYTHONPATH": pythonpath}
    if program == "node":
        env["OPENSSL_CONF"] = "/dev/null"  # the sandbox has no /etc/ssl; node reads it at start
    try:
        done = subprocess.run(
            [executable, *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"passed": False, "detail": f"did not finish within {timeout:g} s"}
    except OSError as exc:
        return {"passed": False, "detail": f"could not start: {exc}"}
    detail = "" if done.returncode == 0 else tail(done.stderr or done.stdout)
    lines = done.stdout.strip().splitlines()
    return {
        "passed": done.returncode == 0,
        "exit_code": done.returncode,
        "last_line": lines[-1] if lines else "",
        "detail": detail,
    }


def probe(spec: dict[str, Any]) -> dict[str, Any]:
    workspace = spec["workspace"]
    timeout = float(spec["timeout_seconds"])
    entries = []
    for entry in spec["entries"]:
        cwd = os.path.join(workspace, entry["folder"])
        pythonpath = os.pathsep.join([cwd, workspace])
        outcome = run_program(entry["program"], entry["argv"], cwd, pythonpath, timeout)
        entries.append({**entry, **outcome})
    apis = []
    for api in spec["apis"]:
        cwd = os.path.join(workspace, api["folder"])
        argv = [
            os.path.abspath(__file__),
            "--serve",
            api["module"],
            api["attr"],
            "1" if api["factory"] else "0",
            str(timeout),
        ]
        outcome = run_program("python", argv, cwd, os.pathsep.join([cwd, workspace]), timeout + 10)
        try:
            answered = json.loads(outcome.get("last_line", ""))
        except ValueError:
            answered = None
        if not isinstance(answered, dict):
            answered = {"passed": False, "detail": outcome["detail"] or "no answer from the probe"}
        apis.append({**api, **answered})
    return {"entries": entries, "apis": apis}


def http_get(url: str, timeout: float) -> tuple[int | None, bytes, str]:
    """(status, body, error): a status for every HTTP answer, None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read(1 << 20), ""
    except urllib.error.HTTPError as exc:
        return exc.code, b"", ""
    except (urllib.error.URLError, OSError) as exc:
        return None, b"", str(exc)


def first_get_route(schema_body: bytes) -> str | None:
    """The first GET path of the OpenAPI schema that needs no path parameter."""
    try:
        paths = json.loads(schema_body).get("paths", {})
    except (ValueError, AttributeError):
        return None
    for path, operations in paths.items():
        if isinstance(operations, dict) and "get" in operations and "{" not in path:
            return str(path)
    return None


def serve_and_request(module_name: str, attr: str, factory: bool, timeout: float) -> dict[str, Any]:
    """Serve the app with uvicorn on loopback, then GET /docs and its first GET route."""
    import uvicorn

    sys.path.insert(0, os.getcwd())
    app = getattr(importlib.import_module(module_name), attr)
    if factory:
        app = app()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="auto"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            return {"passed": False, "detail": "uvicorn did not start serving the app"}
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    answers: dict[str, int | None] = {}
    errors = []
    docs, _, error = http_get(f"{base}/docs", timeout)
    answers["/docs"] = docs
    errors += [error] if error else []
    _, schema, _ = http_get(f"{base}/openapi.json", timeout)
    route = first_get_route(schema)
    if route is not None:
        answers[route], _, error = http_get(f"{base}{route}", timeout)
        errors += [error] if error else []
    server.should_exit = True
    thread.join(timeout=5)
    # A 401 or 404 is still an answer of a running service; a 5xx or silence is not.
    passed = all(status is not None and status < 500 for status in answers.values())
    detail = ", ".join(f"GET {path} -> {status}" for path, status in answers.items())
    return {"passed": passed, "answers": answers, "detail": "; ".join([detail, *errors])}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        module_name, attr, factory, timeout = argv[1:5]
        try:
            result = serve_and_request(module_name, attr, factory == "1", float(timeout))
        except Exception as exc:  # the generated app's own failure is the finding
            result = {"passed": False, "detail": tail(f"{type(exc).__name__}: {exc}")}
        print(json.dumps(result))
        return 0
    with open(argv[0], encoding="utf-8") as spec_file:
        print(json.dumps(probe(json.load(spec_file))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
