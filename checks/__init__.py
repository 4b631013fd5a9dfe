"""The checks room: the sandbox that runs generated code and the rules that judge it.

The `checks` activities (activities/checks.py) only call into here.
"""
