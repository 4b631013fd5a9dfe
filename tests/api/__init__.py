"""Tests of `api/` over real HTTP: runs, decisions, auth, tenants, limits, the schema."""
