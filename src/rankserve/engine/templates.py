"""Prompt templates of the LLM reranker families beyond Qwen3-Reranker, as shared prefix + per-document ids.

Each builder turns a :class:`ScoreRequest` into :class:`Pair` values whose ``prefix`` (shared by
all documents of the request, computed once per batch on the packed engine) followed by ``tokens``
are exactly the token ids the family's official code feeds its model. Where the official code
tokenizes pieces separately and concatenates the id lists (mxbai, bge-gemma) the split is exact by
construction; where it tokenizes one string (zerank, ctxl) the split points are ones the Qwen
pre-tokenizer always splits at, or the whole string is tokenized per document. ``tests/engine/test_families.py``
checks every template against an independent copy of its model card's code.

Truncation follows the card where it has a rule (mxbai and bge-gemma cap the query at 3/4 of their
length budget and cut the document from the right: RankServe's ``head`` policy with the same budget);
``head_tail`` and ``chunks`` work on the document's ids as for Qwen3-Reranker. No torch here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rankserve.engine.families import Activation, Family
from rankserve.engine.prepare import MIN_BODY_TOKENS, first_copies, growing_slices, validate
from rankserve.engine.types import Pair, PreparedRequest, ScoreRequest
from rankserve.errors import InvalidInputError, ModelLoadError
from rankserve.truncation import TAIL_CHARS, fit

ZERANK_QUERY = "<<rankserve-query>>"
ZERANK_DOCUMENT = "<<rankserve-document>>"
CHATML_SYSTEM_USER = (
    "<|im_start|>system\n" + ZERANK_QUERY + "<|im_end|>\n<|im_start|>user\n" + ZERANK_DOCUMENT
    + "<|im_end|>\n<|im_start|>assistant\n"
)  # fmt: skip
"""The stock Qwen3 chat template rendered for (system, user) + generation prompt: the fallback where a
tokenizer ships no chat template."""

CTXL_HEAD = "Check whether a given document contains information helpful to answer the query.\n<Document>"
"""ctxl-rerank-v2 ``format_prompts`` up to the document (the card's f-string:
``...query.\\n<Document> {doc}\\n<Query> {query}{instruction} ??``)."""

MXBAI_PREFIX = (
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\n"
)
MXBAI_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n"
MXBAI_TASK = (
    "You are a search relevance expert who evaluates how well documents match search queries. For each "
    "query-document pair, carefully analyze the semantic relationship between them, then provide your binary "
    "relevance judgment (0 for not relevant, 1 for relevant).\nRelevance:"
)
"""mxbai-rerank-v2 (``MxbaiRerankV2`` class attributes, mixedbread-ai/mxbai-rerank @ 8e709dc)."""

GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by "
    "providing a prediction of either 'Yes' or 'No'."
)
"""bge-reranker-v2-gemma's default prompt (model card ``get_inputs``; FlagLLMReranker's default)."""


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Ids without special tokens, through the Rust backend's fast batch path where there is one."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and hasattr(backend, "encode_batch_fast"):
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


@dataclass(frozen=True)
class Frame:
    """A request's part of the prompt: the shared prefix, the document's budget and what follows it.

    ``tail_text``: where the family tokenizes document and tail as one string, that string's tail,
    so an uncut document's ids are ``ids(doc_text + tail_text)`` (exact) rather than the two id lists.
    """

    prefix: list[int]
    budget: int
    cut: bool
    tail: list[int]
    tail_text: str | None = None


class TemplateBuilder:
    """The request loop every family shares; subclasses say what the frame and the document text are."""

    def __init__(self, family: Family, tokenizer, max_length: int) -> None:
        self.family = family
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.activation: Activation = family.activation

    def encode(self, texts: list[str]) -> list[list[int]]:
        return encode(self.tokenizer, texts)

    def check_budget(self, fixed: int) -> None:
        if self.max_length - fixed < MIN_BODY_TOKENS:
            raise ModelLoadError(
                f"max_length={self.max_length} leaves only {self.max_length - fixed} tokens for query and document "
                f"after the {fixed}-token {self.family.name} prompt; raise max_length"
            )

    def cap(self, text: str, which: int) -> tuple[str, bool]:
        """The family's character cap (zerank-1's remote code keeps query[:2000], document[:10000])."""
        caps = self.family.char_caps
        if caps is None or len(text) <= caps[which]:
            return text, False
        return text[: caps[which]], True

    def frame(self, request: ScoreRequest) -> Frame:
        raise NotImplementedError

    def doc_text(self, doc: str) -> str:
        return doc

    def prepare(self, request: ScoreRequest, on_pairs: Callable[[list[Pair]], None] | None = None) -> PreparedRequest:
        validate(request)
        frame = self.frame(request)
        prefix = tuple(frame.prefix)
        docs = list(request.documents)
        distinct, same_as = first_copies(docs)
        prepared = PreparedRequest(request, same_as=same_as, activation=self.activation)
        truncated: dict[int, bool] = {}
        parts = growing_slices([len(docs[i]) for i in distinct]) if on_pairs else [slice(None)]
        for part in parts:
            indices = distinct[part]
            capped = [self.cap(docs[i], 1) for i in indices]
            texts = [self.doc_text(text) for text, _ in capped]
            doc_ids = self.encode(texts)
            wholes = self.encode([t + frame.tail_text for t in texts]) if frame.tail_text is not None else None
            new: list[Pair] = []
            for k, (index, ids) in enumerate(zip(indices, doc_ids)):
                tail_tokens = None
                if len(ids) > frame.budget and request.truncation == "head_tail":
                    tail_tokens = len(self.encode([texts[k][-TAIL_CHARS:]])[0])
                fitted = fit(ids, frame.budget, request.truncation, tail_tokens)
                truncated[index] = fitted.truncated or frame.cut or capped[k][1]
                if wholes is not None and not fitted.truncated and len(fitted.windows) == 1:
                    if len(wholes[k]) <= frame.budget + len(frame.tail):
                        new.append(Pair(index, 0, prefix, wholes[k]))
                        continue
                for window, win_ids in enumerate(fitted.windows):
                    new.append(Pair(index, window, prefix, win_ids + frame.tail))
            prepared.pairs.extend(new)
            if on_pairs:
                on_pairs(new)
        prepared.truncated = [truncated[same_as.get(i, i)] for i in range(len(docs))]
        return prepared

    def cut_text(self, text: str, make: Callable[[str], str], cap: int) -> tuple[list[int], bool]:
        """``ids(make(text))``, with ``text`` shortened (in tokens, from the end) until they fit in ``cap``."""
        ids = self.encode([make(text)])[0]
        if len(ids) <= cap:
            return ids, False
        own = self.encode([text])[0]
        keep = len(own) - (len(ids) - cap)
        while keep >= 1:
            ids = self.encode([make(self.tokenizer.decode(own[:keep]))])[0]
            if len(ids) <= cap:
                return ids, True
            keep -= max(1, len(ids) - cap)
        raise InvalidInputError(f"the query and instruction must fit in {cap} tokens with max_length={self.max_length}")


class ZerankBuilder(TemplateBuilder):
    """zerank: the chat template with the query as the system turn and the document as the user turn.

    ``modeling_zeranker.py``: ``messages = [{"role": "system", "content": query.strip()}, {"role": "user",
    "content": document.strip()}]``, ``apply_chat_template(..., add_generation_prompt=True)``. The checkpoint's
    own chat template is rendered once with placeholders and split there. The shared prefix ends with
    ``user\\n``, where the Qwen pre-tokenizer always splits before a stripped document.
    """

    def __init__(self, family: Family, tokenizer, max_length: int) -> None:
        super().__init__(family, tokenizer, max_length)
        rendered = CHATML_SYSTEM_USER
        if getattr(tokenizer, "chat_template", None):
            messages = [{"role": "system", "content": ZERANK_QUERY}, {"role": "user", "content": ZERANK_DOCUMENT}]
            rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        self.head_text, rest = rendered.split(ZERANK_QUERY)
        self.middle_text, suffix = rest.split(ZERANK_DOCUMENT)
        self.suffix_ids = self.encode([suffix])[0]
        self.frame_len = len(self.encode([self.head_text + self.middle_text])[0])
        self.check_budget(self.frame_len + len(self.suffix_ids))

    def frame(self, request):
        query, capped = self.cap(request.query, 0)
        query = query.strip()
        if request.instruction:  # UNVERIFIED: the card shows no instruction slot; it goes first in the query's turn
            query = f"{request.instruction.strip()}\n{query}"
        room = self.max_length - self.frame_len - len(self.suffix_ids)
        ids, cut = self.cut_text(query, lambda q: self.head_text + q + self.middle_text, self.frame_len + room // 2)
        return Frame(ids, self.max_length - len(ids) - len(self.suffix_ids), capped or cut, self.suffix_ids)

    def doc_text(self, doc):
        return doc.strip()


class CtxlBuilder(TemplateBuilder):
    """ctxl-rerank-v2: ``Check whether ...\\n<Document> {doc}\\n<Query> {query}{ instruction} ??``, no chat template.

    The document comes before the query, so only the instruction line is shared. An uncut document is
    tokenized with the query as one string (the card tokenizes the whole prompt, and a document ending in
    punctuation or whitespace merges with the newline after it); a cut one is its kept ids + the query's.
    """

    def __init__(self, family: Family, tokenizer, max_length: int) -> None:
        super().__init__(family, tokenizer, max_length)
        self.head_ids = self.encode([CTXL_HEAD])[0]
        self.check_budget(len(self.head_ids) + len(self.encode(["\n<Query>  ??"])[0]))

    @staticmethod
    def query_text(instruction: str | None, query: str) -> str:
        instruction = f" {instruction}" if instruction else ""
        return f"\n<Query> {query}{instruction} ??"

    def frame(self, request):
        room = self.max_length - len(self.head_ids)
        ids, cut = self.cut_text(request.query, lambda q: self.query_text(request.instruction, q), room // 2)
        whole = None if cut else self.query_text(request.instruction, request.query)
        return Frame(self.head_ids, room - len(ids), cut, ids, whole)

    def doc_text(self, doc):
        return " " + doc


class MxbaiBuilder(TemplateBuilder):
    """mxbai-rerank-v2 (``MxbaiRerankV2.prepare_predefined_inputs`` / ``prepare_inputs`` / ``concat_input_ids``).

    ``prefix + ids(query part) + ids("\\n") + ids("document: " + doc) + ids("\\n") + ids(task) + ids(suffix)``,
    each piece tokenized on its own. The card's ``max_length`` (L) bounds query + "\\n" + document; our
    ``max_length`` bounds the whole prompt, so L = max_length - (prefix + task + suffix + one "\\n"), the card's
    ``predefined_length``. The query part is cut to ``L * 3 // 4`` tokens, the document to the rest.
    """

    def __init__(self, family: Family, tokenizer, max_length: int) -> None:
        super().__init__(family, tokenizer, max_length)
        self.prefix_ids, self.sep_ids, task, suffix = self.encode([MXBAI_PREFIX, "\n", MXBAI_TASK, MXBAI_SUFFIX])
        self.tail_ids = self.sep_ids + task + suffix
        predefined = len(self.prefix_ids) + len(task) + len(suffix) + len(self.sep_ids)
        self.check_budget(predefined)
        self.card_max = max_length - predefined

    def frame(self, request):
        if request.instruction:
            text = f"instruction: {request.instruction}\nquery: {request.query}"
        else:
            text = f"query: {request.query}"
        ids = self.encode([text])[0]
        cap = self.card_max * 3 // 4
        cut = len(ids) > cap
        ids = ids[:cap]
        return Frame(
            self.prefix_ids + ids + self.sep_ids, self.card_max - len(ids) - len(self.sep_ids), cut, self.tail_ids
        )

    def doc_text(self, doc):
        return "document: " + doc


class BgeGemmaBuilder(TemplateBuilder):
    """bge-reranker-v2-gemma, the model card's ``get_inputs``: ``[bos] + ids("A: " + query)[:L*3//4] + ids("\\n")
    + ids("B: " + passage)`` cut so that this part holds at most L tokens, then ``ids("\\n") + ids(prompt)``.

    The card's ``max_length`` (L, 1024 there) excludes the final "\\n" + prompt; ours includes it, so
    L = max_length - len("\\n" + prompt ids).
    """

    def __init__(self, family: Family, tokenizer, max_length: int) -> None:
        super().__init__(family, tokenizer, max_length)
        if tokenizer.bos_token_id is None:
            raise ModelLoadError(f"the {family.name} template starts with the tokenizer's BOS token; it has none")
        self.sep_ids, prompt = self.encode(["\n", GEMMA_PROMPT])
        self.tail_ids = self.sep_ids + prompt
        self.check_budget(len(self.tail_ids) + 1)
        self.card_max = max_length - len(self.tail_ids)

    def frame(self, request):
        ids = self.encode(["A: " + request.query])[0]
        cap = self.card_max * 3 // 4
        cut = len(ids) > cap
        prefix = [self.tokenizer.bos_token_id] + ids[:cap] + self.sep_ids
        return Frame(prefix, self.card_max - len(prefix), cut, self.tail_ids)

    def doc_text(self, doc):
        return "B: " + doc


BUILDERS = {"zerank": ZerankBuilder, "ctxl": CtxlBuilder, "mxbai": MxbaiBuilder, "bge-gemma": BgeGemmaBuilder}

__all__ = ["BUILDERS", "Frame", "TemplateBuilder", "encode"]
