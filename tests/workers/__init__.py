"""Tests of `workers/`: which worker serves what, and a worker killed mid-run."""
