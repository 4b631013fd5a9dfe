"""Tests of `checks/`: the gate rules and the sandbox that runs generated code."""
