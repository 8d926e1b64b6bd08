"""LangChain and LlamaIndex adapters, against the stub reranker server (tests/support/stub_reranker.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stub_reranker import DOCS, TIMEOUT, StubServer


@pytest.fixture(scope="module")
def stub() -> Iterator[StubServer]:
    server = StubServer().start()
    yield server
    server.stop()


def test_langchain_compressor_reorders(stub: StubServer) -> None:
    pytest.importorskip("langchain_core", reason="langchain-core is not installed (extra 'langchain')")
    from langchain_core.documents import Document

    from rankserve.integrations.langchain import RankServeRerank

    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(DOCS)]
    compressor = RankServeRerank(base_url=stub.url, top_n=2, timeout=TIMEOUT)
    out = compressor.compress_documents(docs, "capital of france paris")
    assert [d.metadata["n"] for d in out] == [1, 2]
    assert out[0].metadata["relevance_score"] == pytest.approx(1.0)
    assert out[0].metadata["rerank_fallback"] is False
    assert "relevance_score" not in docs[1].metadata, "the caller's documents are not mutated"

    slow = compressor.compress_documents(docs, "slow: capital of france paris")
    assert [d.metadata["n"] for d in slow] == [0, 1] and slow[0].metadata["rerank_fallback"] is True


async def test_langchain_async(stub: StubServer) -> None:
    pytest.importorskip("langchain_core", reason="langchain-core is not installed (extra 'langchain')")
    from langchain_core.documents import Document

    from rankserve.integrations.langchain import RankServeRerank

    docs = [Document(page_content=t) for t in DOCS]
    out = await RankServeRerank(base_url=stub.url, top_n=None).acompress_documents(docs, "paris city")
    assert [d.page_content for d in out][:2] == [DOCS[2], DOCS[1]] and len(out) == 3


def test_llamaindex_postprocessor_reorders(stub: StubServer) -> None:
    pytest.importorskip("llama_index.core", reason="llama-index-core is not installed (extra 'llamaindex')")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from rankserve.integrations.llamaindex import RankServeRerank

    nodes = [NodeWithScore(node=TextNode(text=t, id_=f"n{i}"), score=0.1 * i) for i, t in enumerate(DOCS)]
    post = RankServeRerank(base_url=stub.url, top_n=2, timeout=TIMEOUT)
    out = post.postprocess_nodes(nodes, query_bundle=QueryBundle("capital of france paris"))
    assert [n.node.id_ for n in out] == ["n1", "n2"] and out[0].score == pytest.approx(1.0)
    assert post.last_fallback is False

    out = post.postprocess_nodes(nodes, query_str="fail500: paris")
    assert [n.node.id_ for n in out] == ["n0", "n1"] and post.last_fallback is True
    assert out[1].score == pytest.approx(0.1)  # the retriever's score survives a fallback
    with pytest.raises(ValueError, match="needs the query"):
        post.postprocess_nodes(nodes)


async def test_llamaindex_async(stub: StubServer) -> None:
    pytest.importorskip("llama_index.core", reason="llama-index-core is not installed (extra 'llamaindex')")
    from llama_index.core.schema import NodeWithScore, TextNode

    from rankserve.integrations.llamaindex import RankServeRerank

    nodes = [NodeWithScore(node=TextNode(text=t), score=None) for t in DOCS]
    out = await RankServeRerank(base_url=stub.url, top_n=1).apostprocess_nodes(nodes, query_str="paris city")
    assert out[0].node.get_content() == DOCS[2]


def test_missing_extra_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "langchain_core", None)  # simulate "not installed"
    monkeypatch.setitem(sys.modules, "langchain_core.documents", None)
    monkeypatch.delitem(sys.modules, "rankserve.integrations.langchain", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'rankserve\[langchain\]'"):
        import rankserve.integrations.langchain  # noqa: F401
