"""Retrieval → rerank pipeline: evaluation on labelled data, document index and search.

Modules import their heavy dependencies (torch, sentence-transformers, matplotlib) lazily, so
importing :mod:`rankserve.pipeline` stays cheap.
"""

from rankserve.pipeline.data import Dataset, Document, load_dataset, load_run, write_run
from rankserve.pipeline.metrics import DEFAULT_METRICS, evaluate, mean_metrics
from rankserve.pipeline.retrieval import BM25Retriever, DenseRetriever, HybridRetriever, rrf_fuse
from rankserve.pipeline.text import tokenize

__all__ = [
    "DEFAULT_METRICS",
    "BM25Retriever",
    "Dataset",
    "DenseRetriever",
    "Document",
    "HybridRetriever",
    "evaluate",
    "load_dataset",
    "load_run",
    "mean_metrics",
    "rrf_fuse",
    "tokenize",
    "write_run",
]
