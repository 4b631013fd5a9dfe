"""LLM providers: each module implements `agents.protocol.LLMProvider` for one backend."""
