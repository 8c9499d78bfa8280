"""The four lab advisors: definitions, streaming chat, and the deterministic tools they call."""
