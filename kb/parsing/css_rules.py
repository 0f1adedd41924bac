"""Just enough CSS to tell which HTML text a browser would not show (used by `kb.parsing.html_visible`).

Hidden text is a way to plant instructions or false facts in a page ("grants 365 paid days off" in a
`display:none` span): nobody reviewing the page sees it, but an indexer would quote it first. This is not a
CSS engine. It reads inline `style` attributes, the old presentational attributes (`<font color>`,
`bgcolor`) and rules in `<style>` blocks whose selectors are a single compound selector (`p`, `.x`, `#id`,
`div.note`, `.a.b`; lists of them separated by commas), with specificity, source order and `!important`.
Rules with combinators or pseudo-classes and everything inside `@media` and other at-rules are ignored,
and so is every external stylesheet: what they do cannot be told from the file alone. Where a colour
comparison depends on something unknown (an external stylesheet, an ignored rule that sets colours, a
background image, positioned boxes), no colour judgement is made.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

Color = tuple[int, int, int, float]  # red, green, blue 0-255; alpha 0-1

# Compound selectors only: an optional tag (or *), then any number of .class and #id parts.
COMPOUND = re.compile(r"^(?P<tag>[a-zA-Z][a-zA-Z0-9-]*|\*)?(?P<parts>(?:[.#][\w-]+)*)$")
BRACES = re.compile(r"[{}]")
COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
HEX_COLOR = re.compile(r"[0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8}")
IMPORTANT = re.compile(r"!\s*important\s*$", re.IGNORECASE)
COLOR_PROPERTIES = {"color", "background", "background-color", "background-image", "opacity", "text-shadow"}

NAMED_COLORS: dict[str, Color] = {
    "white": (255, 255, 255, 1.0), "black": (0, 0, 0, 1.0), "red": (255, 0, 0, 1.0),
    "green": (0, 128, 0, 1.0), "blue": (0, 0, 255, 1.0), "yellow": (255, 255, 0, 1.0),
    "gray": (128, 128, 128, 1.0), "grey": (128, 128, 128, 1.0), "silver": (192, 192, 192, 1.0),
    "navy": (0, 0, 128, 1.0), "maroon": (128, 0, 0, 1.0), "purple": (128, 0, 128, 1.0),
    "orange": (255, 165, 0, 1.0), "transparent": (0, 0, 0, 0.0), "snow": (255, 250, 250, 1.0),
    "ivory": (255, 255, 240, 1.0), "whitesmoke": (245, 245, 245, 1.0), "ghostwhite": (248, 248, 255, 1.0),
    "floralwhite": (255, 250, 240, 1.0), "seashell": (255, 245, 238, 1.0), "mintcream": (245, 255, 250, 1.0),
    "azure": (240, 255, 255, 1.0), "aliceblue": (240, 248, 255, 1.0), "honeydew": (240, 255, 240, 1.0),
}  # fmt: skip
FONT_KEYWORDS = {
    "xx-small": 9.0, "x-small": 10.0, "small": 13.0, "medium": 16.0, "large": 18.0, "x-large": 24.0,
    "xx-large": 32.0, "xxx-large": 48.0,
}  # fmt: skip
FONT_TAG_SIZES = {1: 10.0, 2: 13.0, 3: 16.0, 4: 18.0, 5: 24.0, 6: 32.0, 7: 48.0}  # <font size=N>
ABSOLUTE_UNITS = {"px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4, "q": 96 / 101.6}
LENGTH = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+))([a-z%]*)$")
ROOT_FONT_PX = 16.0


@dataclass(frozen=True)
class Rule:
    """One compound selector of a <style> rule and the declarations it sets."""

    tag: str | None
    classes: frozenset[str]
    element_id: str | None
    specificity: tuple[int, int, int]
    order: int
    declarations: tuple[tuple[str, str, bool], ...]  # (property, value, important)

    def matches(self, tag: str, classes: set[str], element_id: str | None) -> bool:
        return (
            (self.tag is None or self.tag == tag)
            and (self.element_id is None or self.element_id == element_id)
            and self.classes <= classes
        )


@dataclass
class StyleSheet:
    """The simple rules of a document's <style> blocks, and what the file alone cannot tell."""

    rules_by_key: dict[str, list[Rule]] = field(default_factory=lambda: defaultdict(list))
    external: bool = False  # <link rel=stylesheet> or @import: the page's backgrounds are unknown
    colors_unknown: bool = False  # an ignored rule sets colours or backgrounds: no colour judgements
    rule_count: int = 0  # source order of the next rule

    def add_css(self, css: str) -> None:
        for prelude, body in _top_level_rules(COMMENT.sub(" ", css), self):
            declarations = tuple(parse_declarations(body))
            for selector in prelude.split(","):
                self.rule_count += 1
                rule = _compound_rule(selector.strip(), declarations, self.rule_count)
                if rule is None:
                    if any(prop in COLOR_PROPERTIES for prop, _, _ in declarations):
                        self.colors_unknown = True
                    continue
                key = f"#{rule.element_id}" if rule.element_id else (
                    f".{min(rule.classes)}" if rule.classes else rule.tag or "*"
                )
                self.rules_by_key[key].append(rule)

    def matching(self, tag: str, classes: set[str], element_id: str | None) -> list[Rule]:
        keys = [tag, "*", *(f".{name}" for name in classes)] + ([f"#{element_id}"] if element_id else [])
        rules = (rule for key in keys for rule in self.rules_by_key.get(key, ()))
        return sorted(
            (rule for rule in rules if rule.matches(tag, classes, element_id)),
            key=lambda rule: (rule.specificity, rule.order),
        )


def _top_level_rules(css: str, sheet: StyleSheet) -> list[tuple[str, str]]:
    """(selectors, declarations) of each top-level rule; at-rules are skipped, @import marks the sheet external.

    One pass: the text before each "{" is statements (@import, @charset) up to its last ";", then a prelude.
    """
    rules, position, length = [], 0, len(css)
    while position < length:
        brace = css.find("{", position)
        segment = css[position:] if brace < 0 else css[position:brace]
        cut = segment.rfind(";") if brace >= 0 else len(segment)
        if "@import" in segment[: max(cut, 0)].lower():
            sheet.external = True
        if brace < 0:
            break
        prelude = segment[cut + 1 :].strip()
        if prelude.startswith("@"):  # @media, @font-face, @supports ...: skipped whole
            position = _block_end(css, brace)
            continue
        end = css.find("}", brace)
        end = length if end < 0 else end
        rules.append((prelude, css[brace + 1 : end]))
        position = end + 1
    return rules


def _block_end(css: str, brace: int) -> int:
    """Just past the "}" that closes the block opened at `brace` (blocks nest inside at-rules)."""
    depth = 0
    for match in BRACES.finditer(css, brace):
        depth += 1 if match.group() == "{" else -1
        if depth == 0:
            return match.end()
    return len(css)


def _compound_rule(selector: str, declarations: tuple[tuple[str, str, bool], ...], order: int) -> Rule | None:
    match = COMPOUND.match(selector)
    if not selector or match is None:
        return None
    tag = match.group("tag")
    parts = re.findall(r"[.#][\w-]+", match.group("parts"))
    ids = [part[1:] for part in parts if part[0] == "#"]
    classes = frozenset(part[1:] for part in parts if part[0] == ".")
    if len(set(ids)) > 1:
        return None  # can never match
    tag = None if tag in (None, "*") else tag.lower()
    specificity = (len(ids), len(classes), 1 if tag else 0)
    return Rule(tag, classes, ids[0] if ids else None, specificity, order, declarations)


def parse_declarations(text: str) -> list[tuple[str, str, bool]]:
    """`color: red; display: none !important` -> [("color", "red", False), ("display", "none", True)]."""
    declarations = []
    for part in text.split(";"):
        prop, colon, value = part.partition(":")
        if not colon:
            continue
        value, important = IMPORTANT.sub("", value).strip(), bool(IMPORTANT.search(value))
        if prop.strip():
            declarations.append((prop.strip().lower(), value.lower(), important))
    return declarations


def parse_color(value: str) -> Color | None:
    """A CSS or HTML colour as (r, g, b, alpha); None when it is not one this module knows."""
    value = value.strip().lower()
    if value in NAMED_COLORS:
        return NAMED_COLORS[value]
    hex_digits = value[1:] if value.startswith("#") else value  # bgcolor="ffffff" has no "#"
    if re.fullmatch(HEX_COLOR, hex_digits) and (value.startswith("#") or len(value) == 6):
        if len(hex_digits) in (3, 4):
            hex_digits = "".join(digit * 2 for digit in hex_digits)
        alpha = int(hex_digits[6:8], 16) / 255 if len(hex_digits) == 8 else 1.0
        return (int(hex_digits[0:2], 16), int(hex_digits[2:4], 16), int(hex_digits[4:6], 16), alpha)
    match = re.fullmatch(r"rgba?\(([^)]*)\)", value)
    if match:
        numbers = [part for part in re.split(r"[\s,/]+", match.group(1).strip()) if part]
        if len(numbers) in (3, 4):
            try:
                channels = [_channel(number) for number in numbers[:3]]
                alpha = _fraction(numbers[3]) if len(numbers) == 4 else 1.0
            except ValueError:
                return None
            return (channels[0], channels[1], channels[2], alpha)
    return None


def _channel(number: str) -> int:
    value = float(number[:-1]) * 2.55 if number.endswith("%") else float(number)
    return max(0, min(255, round(value)))


def _fraction(number: str) -> float:
    value = float(number[:-1]) / 100 if number.endswith("%") else float(number)
    return max(0.0, min(1.0, value))


def color_in(value: str) -> Color | None:
    """The colour inside a `background` shorthand such as `#fff url(x.png) no-repeat`, if one is given."""
    for token in re.findall(r"rgba?\([^)]*\)|#[0-9a-fA-F]+|[a-zA-Z]+", value):
        color = parse_color(token)
        if color is not None:
            return color
    return None


def font_size_px(value: str, parent_px: float | None) -> float | None:
    """A `font-size` in pixels; None when it cannot be told (calc(), viewport units, an unknown parent)."""
    value = value.strip()
    if value in FONT_KEYWORDS:
        return FONT_KEYWORDS[value]
    if value in ("inherit", "unset"):
        return parent_px
    if value == "initial":
        return ROOT_FONT_PX
    if value in ("smaller", "larger"):
        return None if parent_px is None else parent_px * (0.83 if value == "smaller" else 1.2)
    return length_px(value, parent_px)


def length_px(value: str, font_px: float | None) -> float | None:
    """A CSS length in pixels: absolute units, em/ex/ch (of `font_px`), rem and %; None otherwise."""
    match = LENGTH.match(value.strip())
    if match is None:
        return None
    number, unit = float(match.group(1)), match.group(2)
    if number == 0:
        return 0.0
    if unit in ABSOLUTE_UNITS:
        return number * ABSOLUTE_UNITS[unit]
    if unit == "rem":
        return number * ROOT_FONT_PX
    if font_px is None:
        return None
    relative = {"em": 1.0, "ex": 0.5, "ch": 0.5, "%": 0.01}
    return number * relative[unit] * font_px if unit in relative else None


def font_tag_px(size: str) -> float | None:
    """`<font size="1">` .. `size="7"`, and relative `+1` / `-2`, in pixels."""
    size = size.strip()
    try:
        number = int(size)
    except ValueError:
        return None
    if size.startswith(("+", "-")):
        number = 3 + number
    return FONT_TAG_SIZES[max(1, min(7, number))]
