"""The checks room: the sandbox that runs generated code and the rules that judge it.

`gates` says which checks each checked gate runs: `lint` (ruff), `tests` (the generated
projects' pytest suites, in the `sandbox`), `security` (bandit and a secret scan) and
`dependencies` (requirement pins, and requirements the sandbox's `stack` lacks), on a
`workspace` checkout. The `checks` activity (activities/checks.py) only calls into here.
"""
