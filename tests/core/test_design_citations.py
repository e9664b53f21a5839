"""Comments cite the repository's own design (docs/DESIGN.md) by a section's title, as
``(docs/DESIGN.md, "Lock order")``: every section cited must exist, so that a renamed or
removed section cannot leave comments pointing at nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "DESIGN.md"
# A citation names the file, then one or more quoted section titles, joined by commas, "and" or "or".
CITATION = re.compile(r'DESIGN\.md,?\s+((?:"[^"]{1,60}"(?:,?\s*(?:and|or)?\s*)?)+)')
TITLE = re.compile(r'"([^"]{1,60})"')


def _sections() -> set[str]:
    return {line[3:].strip() for line in DESIGN.read_text().splitlines() if line.startswith("## ")}


def _tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / name for name in listed.splitlines() if name.endswith((".py", ".md", ".sh", ".html", ".lua"))]


def _citations() -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    for path in _tracked_files():
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        # Comments and docstrings wrap: a citation may continue on the next line (after a "#").
        text = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)
        for match in CITATION.finditer(text):
            for title in TITLE.findall(match.group(1)):
                cited.setdefault(title, set()).add(str(path.relative_to(ROOT)))
    return cited


def test_every_design_section_a_comment_cites_exists():
    # given
    sections = _sections()
    # when
    missing = {title: sorted(files) for title, files in _citations().items() if title not in sections}
    # then
    assert missing == {}


def test_the_citation_pattern_finds_a_citation_and_its_title():
    text = 'the user lock first (docs/DESIGN.md, "Lock order") and then'
    assert [TITLE.findall(m.group(1)) for m in CITATION.finditer(text)] == [["Lock order"]]


def test_nothing_cites_a_document_the_repository_does_not_have():
    # given: the product's contract lives outside the repository; what a reader needs of it
    # is in the README and docs/DESIGN.md, which comments cite instead
    # A whole word, its first letter in brackets so that this line is not a hit of its own
    # (docs/DESIGN.md, "API documents").
    outside = re.compile(r"\b[S]PEC\b")
    # when
    citing = sorted(
        str(path.relative_to(ROOT))
        for path in _tracked_files()
        if path.is_file() and outside.search(path.read_text(errors="replace"))
    )
    # then
    assert citing == []
