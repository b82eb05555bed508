"""Workers AI, answered locally: test mocks, an OpenAI-compatible server, or a clear error."""
