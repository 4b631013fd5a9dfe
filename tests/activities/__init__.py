"""Tests of `activities/`: model calls and context, notifications, webhooks."""
