"""Markdown link syntax that Markdown left as text, turned into the words a reader sees.

python-markdown leaves a link as typed when it cannot resolve it: a reference whose definition is missing or
has no target (`[email][authorizing-official]`), a footnote without the footnotes extension (`[^1]`), links
inside raw HTML. unstructured then indexes the brackets and the target, and answers quote them. Here the
rendered page's text (never inside <code> or <pre>, where brackets are code) keeps the link text, drops the
target, drops leftover reference definitions, and keeps bare URLs as they are (they are text a reader reads).

Each pattern wants a `[` that does not follow a word character or `]`, so code outside code blocks
(`scores[0]['rouge-l']`, `Start[Config](Service{})`) is left alone.
"""

from __future__ import annotations

import re

import lxml.html

OPEN = r"(?<![\w\]\\])"  # a link's "[" follows a space, punctuation or the line start, never a word or "\["
TARGET = r"<?(?:[^\s(){}<>\[\]]|\([^\s()]*\))*>?"  # a URL or path, with one level of parentheses
TITLE = r"""(?:\s+(?:"[^"\n]*"|'[^'\n]*'))?"""
IMAGE_OR_LINK = re.compile(OPEN + r"!?\[([^\[\]]*)\]\(\s*" + TARGET + TITLE + r"\s*\)")
REFERENCE = re.compile(OPEN + r"\[([^\[\]^]+)\]\[(?:[\w#][^\[\]\n'\"]*)?\]")  # [text][id] and [text][]
DEFINITION = re.compile(r"^[ \t]*\[[^\[\]\n^]+\]:[ \t]*" + TARGET + TITLE + r"[ \t]*(?:\n|$)", re.MULTILINE)
FOOTNOTE_DEFINITION = re.compile(r"^([ \t]*)\[\^([^\[\]\s]+)\]:[ \t]*", re.MULTILINE)
FOOTNOTE = re.compile(r"\[\^[^\[\]\s]+\](?!\()")  # a reference follows its word: "partner[^1]"
CODE_TAGS = {"code", "pre", "kbd", "samp", "script", "style"}


def plain_links(text: str) -> str:
    """`text` with Markdown link, image, reference and footnote syntax replaced by what it shows."""
    if "[" not in text:
        return text
    text = DEFINITION.sub("", text)
    text = FOOTNOTE_DEFINITION.sub(r"\1Note \2: ", text)
    text = FOOTNOTE.sub("", text)
    text = IMAGE_OR_LINK.sub(r"\1", text)
    return REFERENCE.sub(r"\1", text)


def plain_links_in_html(root: lxml.html.HtmlElement) -> None:
    """Apply `plain_links` to every text of the page outside code, in place; an image becomes its alt text
    (unstructured would cut the sentence around it into three elements)."""
    stack = [root]
    while stack:  # its own stack: the tree can be deeper than Python's recursion limit
        element = stack.pop()
        if element.tag == "img" and element is not root:
            element.tail = plain_links((element.get("alt") or "") + (element.tail or ""))
            element.drop_tree()  # its tail joins the text before it
            continue
        if not isinstance(element.tag, str) or element.tag in CODE_TAGS:
            if element is not root and element.tail and "[" in element.tail:
                element.tail = plain_links(element.tail)
            continue
        if element.text and "[" in element.text:
            element.text = plain_links(element.text)
        if element is not root and element.tail and "[" in element.tail:
            element.tail = plain_links(element.tail)
        stack.extend(element)
