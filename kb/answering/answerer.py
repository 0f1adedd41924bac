"""The entry point: a question -> passages -> an Answer, by the language model when there is one, else by quoting.

Typed end to end: the retriever yields Passages, the extractive Answer is returned as it is, and a
model's text is finalized once. The model never makes an answer fail: when it cannot be reached the
extractive answer stands in, saying why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Literal, Sequence

from kb.answering.citations import NO_PASSAGES, at_evidence, finalize, says_not_found
from kb.answering.extractive import QueryTerms, extractive_answer
from kb.answering.followup import offline_standalone
from kb.claims import check_claims
from kb.records import Answer, Passage

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from kb.index import SearchFilter
    from kb.retrieval import Retriever

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnswerEvent:
    """One step of a streamed answer: the passages first, then text tokens, then the finished answer."""

    kind: Literal["passages", "token", "answer"]
    passages: list[Passage] = field(default_factory=list)
    token: str = ""
    answer: Answer | None = None


class Answerer:
    """Answers questions from the knowledge base; never fails because the language model does."""

    def __init__(
        self,
        retriever: Retriever,
        query_terms: QueryTerms,
        llm: BaseChatModel | None,
        k: int,
        min_relevance: float,
    ):
        self._retriever = retriever
        self._query_terms = query_terms
        self._llm = llm
        self._k = k
        self._min_relevance = min_relevance

    @property
    def mode(self) -> Literal["llm", "extractive"]:
        return "llm" if self._llm is not None else "extractive"

    def condense(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """What to search for: a follow-up made standalone by the model, else by adding the previous
        query's topic words (kb.answering.followup); a question that names its own topic as asked.

        `history` is the earlier (query, answer) pairs, each query what that turn searched for.
        """
        if not history:
            return question
        if self._llm is None:
            return offline_standalone(question, history, self._query_terms)
        from kb.answering.llm import LLM_ERRORS, condense_question, describe_llm_error  # loaded with the model

        try:
            return condense_question(question, history, self._llm)
        except LLM_ERRORS as exc:
            log.warning("could not rewrite the follow-up question (%s); adding the previous topic offline",
                        describe_llm_error(exc))
            return offline_standalone(question, history, self._query_terms)

    def ask(self, question: str, flt: SearchFilter | None = None) -> Answer:
        """The finished Answer (what `stream` ends with)."""
        for event in self.stream(question, flt):
            if event.answer is not None:
                return event.answer
        raise RuntimeError("the answer stream ended without an answer")  # stream always ends with one

    def stream(self, question: str, flt: SearchFilter | None = None) -> Iterator[AnswerEvent]:
        """Yield the passages, then the answer's text as it is produced, then the finished Answer.

        The finished Answer's text is the one to keep: its markers are finalized, and if the model
        failed part-way it is the extractive fallback, not the tokens streamed so far. An extractive
        answer's text comes as one token.
        """
        passages = self._retriever.search(question, k=self._k, flt=flt)
        yield AnswerEvent("passages", passages=passages)
        if self._llm is None:
            answer = extractive_answer(question, passages, self._query_terms, self._min_relevance)
        elif not passages:  # the model is not asked about nothing
            answer = Answer(text=NO_PASSAGES, mode="llm", passages=passages, found=False)
        else:
            yield from self._stream_llm(question, passages, self._llm)
            return
        yield AnswerEvent("token", token=answer.text)
        yield AnswerEvent("answer", answer=checked(answer))

    def _stream_llm(self, question: str, passages: list[Passage], llm: BaseChatModel) -> Iterator[AnswerEvent]:
        from kb.answering.llm import LLM_ERRORS, build_chain, describe_llm_error  # loaded with the model

        tokens: list[str] = []
        try:
            for token in build_chain(llm).stream({"question": question, "passages": passages}):
                if token:
                    tokens.append(token)
                    yield AnswerEvent("token", token=token)
        except LLM_ERRORS as exc:
            yield AnswerEvent("answer", answer=checked(self._fallback(question, passages, describe_llm_error(exc))))
            return
        text, citations = finalize("".join(tokens), passages)
        found = not says_not_found(text)  # the model was told to reply with NOT_FOUND when the passages lack it
        answer = Answer(text=text, mode="llm", citations=citations, passages=passages, found=found)
        yield AnswerEvent("answer", answer=checked(answer))

    def _fallback(self, question: str, passages: list[Passage], reason: str) -> Answer:
        """The extractive answer, opened by why the language model's answer is missing."""
        notice = f"(The language model is not reachable ({reason}); showing an extractive answer.)"
        answer = extractive_answer(question, passages, self._query_terms, self._min_relevance, note=notice)
        if not answer.found:
            answer.text = f"{notice}\n\n{answer.text}"
        return answer


def checked(answer: Answer) -> Answer:
    """The answer with each cited sentence checked against the passages its markers point at (kb.claims):
    whatever wrote it, a model or the extractive quoter, the check is the same. Each citation's page
    becomes the page of the sentence backing it."""
    answer.claims = check_claims(answer.text, {c.n: c.passage.chunk.text for c in answer.citations})
    answer.citations = at_evidence(answer.citations, answer.claims)
    return answer
