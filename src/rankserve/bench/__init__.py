"""``rankserve bench``: engine and HTTP benchmarks against the official Qwen3-Reranker recipe."""
