"""Tests of `workflows/`: the DSL, DAG scheduling, `GoalWorkflow`, gates, decisions, replay."""
