"""Passages -> an answer with numbered citations, from a language model or, offline, by quoting sentences.

- `citations`: the marker rule [n] -> passage n and `finalize`; the one "not found" sentence;
- `extractive`: the offline answerer (quotes sentences; also the fallback when the model fails);
- `llm`: LangChain's prompt, the OpenAI-compatible chat model client, streaming, follow-up rewriting;
- `answerer`: `Answerer`, what the service calls: retrieve, then answer by whichever mode is configured.
"""

from kb.answering.answerer import Answerer, AnswerEvent
from kb.answering.citations import NO_PASSAGES, NOT_FOUND, finalize
from kb.answering.extractive import EXTRACTIVE_NOTE, extractive_answer, split_quotes

# The LLM stack (LangChain, openai, httpx) is 1.7 s of imports: it loads when a model is configured and used,
# so every `kb` command and an offline app start without it.
_LLM_NAMES = ("LLM_ERRORS", "build_chain", "build_llm", "describe_llm_error")


def __getattr__(name: str) -> object:
    if name in _LLM_NAMES:
        from kb.answering import llm

        return getattr(llm, name)
    raise AttributeError(f"module 'kb.answering' has no attribute {name!r}")

__all__ = [
    "EXTRACTIVE_NOTE",
    "LLM_ERRORS",
    "NOT_FOUND",
    "NO_PASSAGES",
    "AnswerEvent",
    "Answerer",
    "build_chain",
    "build_llm",
    "describe_llm_error",
    "extractive_answer",
    "finalize",
    "split_quotes",
]
