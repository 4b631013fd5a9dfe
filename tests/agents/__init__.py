"""Tests of `agents/`: the provider adapters behind one contract, pricing, workspace tools."""
