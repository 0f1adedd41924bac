"""Line breaks inside spreadsheet cells read as spaces, not as a backslash and an "n".

unstructured renders each worksheet through pandas' HTML formatter, which writes a line break inside a cell
(Alt+Enter in Excel: "January–June\n2023") as the two characters `\\n`, and a tab as `\\t`. After that a
break and a backslash the user typed ("C:\\new") look the same, so the breaks are replaced with spaces in the
data frames themselves, before anything renders them; a typed backslash is left as it is.
`install_cell_line_breaks()` wraps the workbook reader that unstructured's partition_xlsx reads sheets with.
"""

from __future__ import annotations

import functools
import re
from typing import Any

BREAKS = re.compile(r"[\r\n\t\x0b]+")


@functools.cache
def install_cell_line_breaks() -> None:
    """Make every sheet unstructured reads have its cells' line breaks as spaces. Runs once."""
    from unstructured.partition import xlsx

    reader: Any = xlsx.ExcelWorkbookReader  # its parse() returns one sheet as a data frame
    parse = reader.parse

    @functools.wraps(parse)
    def parse_without_breaks(self: Any, *args: Any, **kwargs: Any) -> Any:
        return without_line_breaks(parse(self, *args, **kwargs))

    reader.parse = parse_without_breaks


def without_line_breaks(frame: Any) -> Any:
    """`frame` (a pandas DataFrame; pandas has no type stubs here) with every line break or tab in its text
    cells replaced by a space, numbers untouched."""
    for position, dtype in enumerate(frame.dtypes):
        if dtype == object:  # only text columns hold strings (mixed with numbers, which map leaves alone)
            frame.isetitem(position, frame.iloc[:, position].map(_unbroken))
    return frame


def _unbroken(value: object) -> object:
    if isinstance(value, str) and ("\n" in value or "\r" in value or "\t" in value or "\x0b" in value):
        return BREAKS.sub(" ", value)
    return value
