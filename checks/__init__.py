"""The checks room: the sandbox that runs generated code and the rules that judge it.

`gates` says which checks each checked gate runs: `lint` (ruff), `tests` (the generated
projects' pytest suites, in the `sandbox`), `security` (bandit's tests, mostly as ruff's
`S` rules: `bandit_rules`; and a secret scan) and `dependencies` (requirement pins, and
requirements the sandbox's `stack` lacks), on a `workspace` checkout. `cache` keeps each
unit's result per run and content so identical work is done once, `sessions` opens the
sandbox only when code has to run, and `warmup` compiles pytest's plugins once per worker.
The `checks` activity (activities/checks.py) only calls into here.
"""
