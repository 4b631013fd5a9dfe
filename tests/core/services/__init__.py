"""Tests of `core/services/`: budgets and cost estimates."""
