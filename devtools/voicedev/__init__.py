"""Development tools: local mode, signed sample events, requirements generation. Not deployed."""
