"""The neutral turn model: what the four APIs (OpenAI chat and completions, Responses, Anthropic
Messages, Ollama) translate to and from. No HTTP, no CLI wire."""
