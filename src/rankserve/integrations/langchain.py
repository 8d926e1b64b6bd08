"""LangChain document compressor that reranks with a RankServe server.

    from rankserve.integrations.langchain import RankServeRerank
    compressor = RankServeRerank(base_url="http://localhost:8000", top_n=5)
    best = compressor.compress_documents(docs, "my question")
    # or ContextualCompressionRetriever(base_compressor=compressor, base_retriever=...)

Each returned document is a copy with ``metadata["relevance_score"]`` (the same key LangChain's
Cohere reranker uses) and ``metadata["rerank_fallback"]``; when the server is slow or down the
documents come back in retriever order with ``relevance_score`` = ``None`` instead of failing
the chain.
"""

from __future__ import annotations

from collections.abc import Sequence

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
except ImportError as exc:  # optional extra
    raise ImportError(
        "rankserve.integrations.langchain needs langchain-core: pip install 'rankserve[langchain]'"
    ) from exc
from pydantic import ConfigDict, PrivateAttr

from rankserve.client import AsyncRerankClient, RerankClient, RerankResponse
from rankserve.integrations._clients import AdapterClients


class RankServeRerank(AdapterClients, BaseDocumentCompressor):
    """Rerank retrieved documents with RankServe; keep the best ``top_n`` (all when ``None``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    base_url: str = "http://localhost:8000"
    api_key: str | None = None
    top_n: int | None = 3
    instruction: str | None = None
    model: str | None = None
    timeout: float = 2.0
    fallback: str | None = "input"
    _client: RerankClient | None = PrivateAttr(default=None)
    _aclient: AsyncRerankClient | None = PrivateAttr(default=None)

    def _apply(self, documents: Sequence[Document], response: RerankResponse) -> list[Document]:
        out = []
        for result in response.results:
            doc = documents[result.index]
            metadata = {**doc.metadata, "relevance_score": result.relevance_score}
            metadata["rerank_fallback"] = response.fallback
            out.append(Document(page_content=doc.page_content, metadata=metadata, id=doc.id))
        return out

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        texts = [d.page_content for d in documents]
        response = self.client.rerank(query, texts, top_n=self.top_n, instruction=self.instruction)
        return self._apply(documents, response)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        texts = [d.page_content for d in documents]
        response = await self.async_client.rerank(query, texts, top_n=self.top_n, instruction=self.instruction)
        return self._apply(documents, response)
