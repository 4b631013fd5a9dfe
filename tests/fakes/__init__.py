"""Test doubles that speak real wire protocols over loopback (see `messages_api`)."""
