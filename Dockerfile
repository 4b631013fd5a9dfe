# The orchestrator image: one build, three targets.
#
#   docker build -t orchestrator .                         # `runtime` (the default, last stage):
#                                                          # API, orchestration and agent workers
#   docker build --target checks -t orchestrator-checks .  # the checks worker: + the `checks`
#                                                          # extra (pytest, ruff, bandit), bwrap
#
# Both run as the unprivileged user `orchestrator` (uid 10001) with `orchestrator` as the
# entrypoint, e.g. `docker run orchestrator worker --queues orchestrator --metrics-port 9464`.
# Neither has a compiler: build tools live only in the builder stages.
#
# The checks worker runs generated (untrusted) code in a sandbox (checks/sandbox/): bubblewrap
# gives it a private filesystem (the workspace read-write, the interpreter read-only, fresh
# bounded tmpfs for /tmp, /var/tmp, /dev/shm and /run, nothing else of the host) and new
# network, PID and IPC namespaces; util-linux `unshare` is the fallback without bubblewrap.
# Inside a container that needs more than Docker's defaults; choose one (docs/security.md):
#   * strongest: run it as root in the container (`--user 0`) with `--cap-add SYS_ADMIN`,
#     `--security-opt no-new-privileges:true` and, on AppArmor hosts,
#     `--security-opt apparmor=unconfined` (docker-default AppArmor denies mount). Each test
#     run then gets new network, PID and mount namespaces and its own throw-away uid.
#     Docker's default seccomp profile allows unshare/mount once SYS_ADMIN is granted.
#   * without extra capabilities: keep the default non-root user and allow user namespaces
#     (`--security-opt seccomp=unconfined` or a profile permitting unshare(CLONE_NEWUSER),
#     plus a host with unprivileged user namespaces enabled); the tests then run with
#     network and mount namespaces as the worker's own uid.
#   * with neither, the sandbox falls back to rlimits and a scrubbed environment only, and
#     every checks report says the network was not isolated.
# `--privileged` is never needed.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: the project and its dependencies in /opt/venv ------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# A compiler only for a dependency that ships no wheel for this platform; it stays here.
# Debian's stable release fixes package versions; pinning them would break on its updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first (from pyproject.toml alone), so a source change does not reinstall them.
# The `checks` extra is written out too, for checks-builder; this image does without it.
COPY pyproject.toml ./
RUN python -c "import tomllib; project = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(project['dependencies']), file=open('/tmp/requirements.txt', 'w')); \
print('\n'.join(project['optional-dependencies']['checks']), file=open('/tmp/checks-requirements.txt', 'w'))" \
    && pip install -r /tmp/requirements.txt

COPY . .
# A regular (non-editable) install; `prompts/` is package data. The import check runs with
# -P so that it sees the installed packages, not the sources in the working directory.
RUN pip install --no-deps . \
    && orchestrator --help > /dev/null \
    && python -P -c "from agents.roles import ROLES, PROMPTS_DIR; assert ROLES and PROMPTS_DIR.is_dir(), PROMPTS_DIR"

# --- checks-builder: + the tools the checks worker runs on generated code -----------------
FROM builder AS checks-builder
# The `checks` extra of pyproject.toml: pytest runs each generated project's own tests, ruff
# lints, bandit scans. Only this image has them.
RUN pip install -r /tmp/checks-requirements.txt \
    && python -m pytest --version \
    && ruff --version \
    && bandit --version > /dev/null

# --- base: the slim runtime every final image shares -------------------------------------
FROM ${PYTHON_IMAGE} AS base

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/orchestrator \
    ORCHESTRATOR_DATA_DIR=/data

RUN groupadd --system --gid 10001 orchestrator \
    && useradd --system --uid 10001 --gid orchestrator --home-dir /home/orchestrator \
         --create-home --shell /usr/sbin/nologin orchestrator \
    && mkdir -p /data \
    && chown orchestrator:orchestrator /data
# git: repositories come in (`--repo`, uploads) and runs go out (branches, patches, bundles)
# through the git command line (core/infrastructure/git.py).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/*
# No setuid/setgid programs: no process in the container can regain privileges through one
# (the checks worker drops to throw-away uids; see above).
RUN find / -xdev -perm /6000 -type f -exec chmod a-s {} +

WORKDIR /home/orchestrator
EXPOSE 8000 9464

# --- checks: the sandboxing checks worker ----------------------------------------------------
FROM base AS checks
# bubblewrap builds the sandbox; unshare (util-linux, part of Debian's base system) is its
# fallback, installed explicitly so the requirement is visible and survives a base-image
# change (an upgrade would bring setuid programs back: they are stripped again).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap util-linux \
    && rm -rf /var/lib/apt/lists/* \
    && bwrap --version > /dev/null \
    && unshare --help > /dev/null \
    && find / -xdev -perm /6000 -type f -exec chmod a-s {} +
COPY --from=checks-builder /opt/venv /opt/venv
USER 10001:10001
ENTRYPOINT ["orchestrator"]
CMD ["worker", "--queues", "checks", "--metrics-port", "9464"]

# --- runtime (default): API, orchestration and agent workers --------------------------------
FROM base AS runtime
COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
ENTRYPOINT ["orchestrator"]
CMD ["--help"]
