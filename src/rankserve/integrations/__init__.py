"""Adapters for RAG frameworks, built on :mod:`rankserve.client`.

Each adapter is an optional extra and imports its framework only when imported itself:
``rankserve.integrations.langchain`` (``pip install 'rankserve[langchain]'``) and
``rankserve.integrations.llamaindex`` (``pip install 'rankserve[llamaindex]'``).
"""
