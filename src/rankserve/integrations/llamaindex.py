"""LlamaIndex node postprocessor that reranks with a RankServe server.

    from rankserve.integrations.llamaindex import RankServeRerank
    query_engine = index.as_query_engine(similarity_top_k=50,
                                         node_postprocessors=[RankServeRerank(top_n=5)])

Nodes come back best first with ``score`` = the reranker's relevance. When the server is slow
or down they keep the retriever's order and scores (LlamaIndex has no per-result flag, so
:attr:`RankServeRerank.last_fallback` tells whether the last call fell back).
"""

from __future__ import annotations

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as exc:  # optional extra
    raise ImportError(
        "rankserve.integrations.llamaindex needs llama-index-core: pip install 'rankserve[llamaindex]'"
    ) from exc

from rankserve.client import AsyncRerankClient, RerankClient, RerankResponse
from rankserve.integrations._clients import AdapterClients


class RankServeRerank(AdapterClients, BaseNodePostprocessor):
    """Rerank retrieved nodes with RankServe; keep the best ``top_n`` (all when ``None``)."""

    base_url: str = Field(default="http://localhost:8000", description="RankServe server URL.")
    api_key: str | None = Field(default=None, description="Bearer key, if the server needs one.")
    top_n: int | None = Field(default=3, description="Nodes to keep.")
    instruction: str | None = Field(default=None, description="Reranker instruction.")
    model: str | None = Field(default=None, description="Model name sent to the server.")
    timeout: float = Field(default=2.0, description="Seconds before falling back to retriever order.")
    fallback: str | None = Field(default="input", description="'input', 'bm25' or None to raise.")
    last_fallback: bool = Field(default=False, exclude=True)
    _client: RerankClient | None = PrivateAttr(default=None)
    _aclient: AsyncRerankClient | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        return "RankServeRerank"

    def _texts(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None) -> list[str]:
        if query_bundle is None:
            raise ValueError("RankServeRerank needs the query (query_bundle or query_str)")
        return [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]

    def _apply(self, nodes: list[NodeWithScore], response: RerankResponse) -> list[NodeWithScore]:
        self.last_fallback = response.fallback
        out = []
        for result in response.results:
            original = nodes[result.index]
            score = original.score if response.fallback else result.relevance_score
            out.append(NodeWithScore(node=original.node, score=score))
        return out

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        texts = self._texts(nodes, query_bundle)
        response = self.client.rerank(query_bundle.query_str, texts, top_n=self.top_n, instruction=self.instruction)
        return self._apply(nodes, response)

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        texts = self._texts(nodes, query_bundle)
        response = await self.async_client.rerank(
            query_bundle.query_str, texts, top_n=self.top_n, instruction=self.instruction
        )
        return self._apply(nodes, response)
