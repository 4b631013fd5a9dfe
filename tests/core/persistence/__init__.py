"""Tests of `core/persistence/`: storage, tenancy, on both databases."""
