"""The parse stage: file -> elements (headings, paragraphs, list items, tables), each file in a helper process.

- `detect`: what a file really is, by its content (a PDF renamed .docx is still a PDF).
- `parse`: `parse_file`, the entry point; `pdf` (+ `ocr` for scans) and `partition` (unstructured, with
  `delimited` for CSV/TSV and `html_visible`/`css_rules` for HTML) turn a file into elements; `text` decodes
  bytes and cleans text.
- `sandbox`: the caller's side of the helper process (`helper`) that runs `parse_file` under a time limit and a
  memory cap, over the wire in `protocol`.

Only what other stages call is exported here. `python -m kb.parsing.helper` imports this package before it
moves stdout aside for its protocol, so nothing imported here may print.
"""

from kb.parsing.detect import detect_type
from kb.parsing.parse import parse_file
from kb.parsing.sandbox import FileInfo, ParseSandbox, ParseStream
from kb.parsing.text import decode_text

__all__ = ["FileInfo", "ParseSandbox", "ParseStream", "decode_text", "detect_type", "parse_file"]
