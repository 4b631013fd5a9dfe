"""Tests of `cli/`: the `orchestrator` command run as a user runs it."""
