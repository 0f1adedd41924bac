"""HTML -> the HTML a reader sees, before unstructured partitions it.

Two things go wrong when unstructured reads a page as it is. Text a browser does not show (`display:none`,
`visibility:hidden`, the `hidden` attribute, `<template>`, zero-size or off-screen boxes, tiny fonts, text the
colour of its background) is indexed like any other and can be quoted first in answers; `kb.parsing.css_rules` says
which text that is, where the file alone can tell. And libxml2 stops reading at 256 levels of nesting without
an error anyone sees, so a page nested deeper loses everything from that point on while reporting success.
`visible_html` parses with lxml's `huge_tree` (libxml2's limit becomes 2048 levels), drops the hidden text,
turns every element deeper than `SAFE_DEPTH` into plain paragraphs of its text, and serialises the result,
which unstructured can then read whole. Deeper than 2048 levels libxml2 cannot read the page at all, and
that is said in a ParseError instead of indexing half a page.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import lxml.html
from lxml import etree

from kb.parsing.css_rules import (
    ROOT_FONT_PX,
    Color,
    StyleSheet,
    color_in,
    font_size_px,
    font_tag_px,
    length_px,
    parse_color,
    parse_declarations,
)
from kb.records import ParseError

SAFE_DEPTH = 200  # well inside libxml2's default limit (256), which unstructured's own parse keeps
HUGE_DEPTH = 2048  # libxml2's limit with huge_tree
XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")
WHITE = (255, 255, 255)
BLACK: Color = (0, 0, 0, 1.0)
LINK_BLUE: Color = (0, 0, 238, 1.0)
MIN_FONT_PX = 2.0  # text smaller than this cannot be read
MIN_OPACITY = 0.05
SAME_COLOR = 12  # largest difference per colour channel at which text counts as its background's colour
OFFSCREEN_PX = -500.0  # a box moved this far left or up is off the page
HEADING_EM = {"h1": 2.0, "h2": 1.5, "h3": 1.17, "h5": 0.83, "h6": 0.67, "small": 0.83, "sub": 0.83, "sup": 0.83}
OWN_BACKGROUND_TAGS = {"button", "input", "select", "textarea", "mark", "option"}  # the browser paints one
BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
NOT_PARAGRAPH_PARENTS = {"table", "thead", "tbody", "tfoot", "tr", "ul", "ol", "dl", "select", "colgroup", "p"}


@dataclass(frozen=True)
class Computed:
    """The inherited properties that decide whether an element's own text can be seen."""

    visible: bool  # visibility
    font_px: float | None  # None: cannot be told
    color: Color | None
    backdrop: tuple[int, int, int] | None  # the colour behind the text; None: cannot be told


def visible_html(html: str, fix_text: Callable[[lxml.html.HtmlElement], None] | None = None) -> str:
    """`html` without the text a browser would not show and with no nesting deeper than SAFE_DEPTH;
    `fix_text` may change the remaining tree's text in place (in the same parse)."""
    root = parse_html(html)
    if root is None:
        return ""
    sheet = document_stylesheet(root)
    for element in drop_hidden(root, sheet):
        flatten(element)
    if fix_text is not None:
        fix_text(root)
    return lxml.html.tostring(root, encoding="unicode")


def parse_html(html: str) -> lxml.html.HtmlElement | None:
    """The page's tree as libxml2 reads it with huge_tree; a ParseError when it is nested too deeply even so."""
    parser = lxml.html.HTMLParser(huge_tree=True, remove_comments=True, remove_pis=True)
    root = etree.fromstring(XML_DECLARATION.sub("", html, count=1).replace("\x00", ""), parser)
    for error in parser.error_log:
        if error.type_name == "ERR_RESOURCE_LIMIT":
            if "depth" in error.message.lower():
                raise ParseError(f"the HTML is nested more than {HUGE_DEPTH:,} levels deep, too deep to read")
            raise ParseError("the HTML is too large to read")
    return root


def document_stylesheet(root: lxml.html.HtmlElement) -> StyleSheet:
    """The simple rules of every <style> block for the screen; linked stylesheets only mark the sheet external."""
    sheet = StyleSheet()
    for style in root.iter("style"):
        media = (style.get("media") or "all").lower()
        if "all" in media or "screen" in media:
            sheet.add_css(style.text or "")
    for link in root.iter("link"):
        if "stylesheet" in (link.get("rel") or "").lower().split():
            sheet.external = True
    return sheet


def drop_hidden(root: lxml.html.HtmlElement, sheet: StyleSheet) -> list[lxml.html.HtmlElement]:
    """Remove what a browser would not show; return the elements at SAFE_DEPTH, whose contents need flattening.

    The walk keeps its own stack (the tree can be 2048 levels deep). A hidden box goes with everything in it
    but not with the text after it; text hidden by inherited properties (visibility, font size, colour) is
    removed element by element, so a visible child inside a hidden parent stays.
    """
    start = Computed(True, ROOT_FONT_PX, BLACK, None if sheet.external else WHITE)
    stack: list[tuple[lxml.html.HtmlElement, Computed, int]] = [(root, start, 0)]
    removed, deep = [], []
    while stack:
        element, parent, depth = stack.pop()
        if not isinstance(element.tag, str):
            continue
        declared = declarations(element, sheet)
        if removes_box(element, declared, parent):
            removed.append(element)
            continue
        style = compute(element, declared, parent)
        if not shows_text(style, sheet):
            element.text = None
            for child in element:
                child.tail = None
        if depth == SAFE_DEPTH:
            deep.append(element)
        stack.extend((child, style, depth + 1) for child in element)
    for element in removed:
        if element.getparent() is None:
            element.clear()
        else:
            element.drop_tree()  # keeps the text after it
    return deep


def declarations(element: lxml.html.HtmlElement, sheet: StyleSheet) -> dict[str, str]:
    """The winning value of each property set on `element`: presentational attributes, then <style> rules by
    specificity and order, then the style attribute, with !important above all of them."""
    winners: dict[str, tuple[tuple[int, int, tuple[int, int, int], int], str]] = {}

    def put(prop: str, value: str, priority: tuple[int, int, tuple[int, int, int], int]) -> None:
        if prop == "background":  # the shorthand sets both, and a colour it leaves out is transparent
            image = "url" if ("url(" in value or "gradient(" in value) else "none"
            color = color_in(value)
            put("background-image", image, priority)
            put("background-color", "transparent" if color is None and image == "url" else value, priority)
            return
        if prop not in winners or priority >= winners[prop][0]:
            winners[prop] = (priority, value)

    hint = (0, 0, (0, 0, 0), 0)
    tag = element.tag
    if element.get("hidden") is not None or (tag == "dialog" and element.get("open") is None):
        put("display", "none", hint)
    if tag == "font":
        if element.get("color"):
            put("color", element.get("color").lower(), hint)
        size = font_tag_px(element.get("size") or "")
        if size is not None:
            put("font-size", f"{size}px", hint)
    if tag == "body" and element.get("text"):
        put("color", element.get("text").lower(), hint)
    if element.get("bgcolor"):
        put("background-color", element.get("bgcolor").lower(), hint)
    if element.get("background"):
        put("background-image", "url", hint)
    if sheet.rules_by_key:
        classes = set((element.get("class") or "").split())
        for rule in sheet.matching(tag, classes, element.get("id")):
            for prop, value, important in rule.declarations:
                put(prop, value, (int(important), 1, rule.specificity, rule.order))
    for prop, value, important in parse_declarations(element.get("style") or ""):
        put(prop, value, (int(important), 2, (0, 0, 0), 0))
    return {prop: value for prop, (_, value) in winners.items()}


def removes_box(element: lxml.html.HtmlElement, declared: dict[str, str], parent: Computed) -> bool:
    """Whether `element` and everything inside it are not rendered, or rendered where nobody can see them."""
    if element.tag == "template" or declared.get("display", "").startswith("none"):
        return True
    if declared.get("mso-hide") == "all":  # Outlook's own "display:none"
        return True
    font = parent.font_px or ROOT_FONT_PX
    opacity = declared.get("opacity", "1")
    try:
        if (float(opacity[:-1]) / 100 if opacity.endswith("%") else float(opacity)) <= MIN_OPACITY:
            return True
    except ValueError:
        pass
    if declared.get("position") in ("absolute", "fixed"):
        if any(_at_most(declared.get(side), OFFSCREEN_PX, font) for side in ("left", "top", "right")):
            return True
        if _clipped_away(declared.get("clip", ""), declared.get("clip-path", "")):
            return True
    if _at_most(declared.get("text-indent"), OFFSCREEN_PX, font):
        return True
    if any(declared.get(prop) in ("hidden", "clip") for prop in ("overflow", "overflow-x", "overflow-y")):
        if any(_at_most(declared.get(prop), 1.0, font) for prop in ("width", "height", "max-width", "max-height")):
            return True
    return bool(re.search(r"scale[xy]?\(\s*0(\.0*)?\s*[,)]", declared.get("transform", "")))


def compute(element: lxml.html.HtmlElement, declared: dict[str, str], parent: Computed) -> Computed:
    """The element's inherited properties, from its own declarations and its parent's values."""
    visible = parent.visible
    if declared.get("visibility") in ("hidden", "collapse"):
        visible = False
    elif declared.get("visibility") == "visible":
        visible = True
    font = parent.font_px
    if "font-size" in declared:
        font = font_size_px(declared["font-size"], parent.font_px)
    elif element.tag in HEADING_EM and font is not None:
        font *= HEADING_EM[element.tag]
    color = parent.color
    if "color" in declared and declared["color"] not in ("inherit", "currentcolor", "unset"):
        color = parse_color(declared["color"])
    elif "color" not in declared and element.tag == "a" and element.get("href") is not None:
        color = LINK_BLUE
    if declared.get("text-shadow", "none") != "none" or "-webkit-text-fill-color" in declared:
        color = None  # the text may be drawn by its shadow or fill instead
    return Computed(visible, font, color, _backdrop(element, declared, parent.backdrop))


def shows_text(style: Computed, sheet: StyleSheet) -> bool:
    """Whether text with these properties can be seen."""
    if not style.visible:
        return False
    if style.font_px is not None and style.font_px < MIN_FONT_PX:
        return False
    if style.color is None:
        return True
    red, green, blue, alpha = style.color
    if alpha <= MIN_OPACITY:
        return False
    if sheet.colors_unknown or style.backdrop is None:
        return True
    seen = [alpha * channel + (1 - alpha) * behind for channel, behind in zip((red, green, blue), style.backdrop)]
    return max(abs(channel - behind) for channel, behind in zip(seen, style.backdrop)) > SAME_COLOR


def flatten(element: lxml.html.HtmlElement) -> None:
    """Replace everything inside `element` by one <p> per block of its text, in reading order."""
    pieces: list[str] = []
    current: list[str] = []
    for event, node in etree.iterwalk(element, events=("start", "end")):
        if node is element:
            if event == "start" and node.text:
                current.append(node.text)
            continue
        if node.tag in BLOCK_TAGS:
            pieces.append("".join(current))
            current = []
        if event == "start" and node.text:
            current.append(node.text)
        elif event == "end" and node.tail:
            current.append(node.tail)
    pieces.append("".join(current))
    for child in list(element):
        element.remove(child)
    element.text = None
    if element.tag in NOT_PARAGRAPH_PARENTS:
        element.tag = "div"
    for piece in pieces:
        if piece.strip():
            etree.SubElement(element, "p").text = piece


def _backdrop(
    element: lxml.html.HtmlElement, declared: dict[str, str], behind: tuple[int, int, int] | None
) -> tuple[int, int, int] | None:
    """The colour behind the element's text: its own background, else what shows through from its parent."""
    if declared.get("background-image", "none") not in ("none", "initial"):
        return None
    value = declared.get("background-color")
    if value is not None and value not in ("transparent", "initial", "inherit", "unset", "none"):
        color = color_in(value)
        if color is None or 0 < color[3] < 0.9:
            return None  # a colour this module cannot read, or a see-through one
        if color[3] >= 0.9:
            return color[:3]
    if element.tag in OWN_BACKGROUND_TAGS:
        return None
    if declared.get("position") in ("absolute", "fixed", "sticky") or "filter" in declared:
        return None  # it may sit over, or be painted onto, anything
    if "mix-blend-mode" in declared:
        return None
    return behind


def _at_most(value: str | None, limit: float, font_px: float) -> bool:
    if not value:
        return False
    length = length_px(value.split()[0], font_px)
    return length is not None and length <= limit


def _clipped_away(clip: str, clip_path: str) -> bool:
    """`clip: rect(0 0 0 0)` / `rect(1px, 1px, 1px, 1px)` and `clip-path: inset(50%)`: the visually-hidden idiom."""
    match = re.search(r"rect\(([^)]*)\)", clip)
    if match:
        numbers = [length_px(part, ROOT_FONT_PX) for part in re.split(r"[\s,]+", match.group(1).strip()) if part]
        lengths = [number for number in numbers if number is not None]
        if len(numbers) == 4 and len(lengths) == 4:
            top, right, bottom, left = lengths
            if right - left <= 1 or bottom - top <= 1:
                return True
    match = re.search(r"inset\(\s*([\d.]+)%", clip_path)
    return bool(match and float(match.group(1)) >= 50) or bool(re.search(r"circle\(\s*0", clip_path))
