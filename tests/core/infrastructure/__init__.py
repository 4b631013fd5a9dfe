"""Tests of `core/infrastructure/`: codec, outbound guard, logs, metrics, tracing."""
