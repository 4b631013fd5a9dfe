"""Tests of `core/`, one folder per part: persistence, infrastructure, services."""
