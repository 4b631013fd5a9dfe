"""The agents' prompts (`<role>.md`), shipped as package data beside `agents`."""
