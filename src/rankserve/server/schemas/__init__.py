"""Request/response models, one module per API dialect (simple, Cohere/Jina, vLLM)."""
