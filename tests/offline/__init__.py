"""Tests of `offline/`: the deterministic stand-in for an LLM."""
