"""The pytest suite; its folders mirror the product's rooms (see docs/testing.md)."""
