"""Tests of `deploy/`, the Dockerfile and the compose file: they agree with the code."""
