"""Embeddings served locally (sentence-transformers models), and token ids for Ollama clients."""
