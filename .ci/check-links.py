#!/usr/bin/env python3
"""Checks that the repository's documentation references resolve inside the repository.

Scans README.md, CONTRIBUTING.md (if present), docs/**/*.md, fixtures/**/*.md,
connectors/README.md, and the comments of every *.rs file under src/, connectors/src,
connectors/tests and tests/. Fails (exit 1, one `file:line: problem` per finding) when:

  (a) a markdown link `[text](target)` (not http(s) or mailto) points to a file or directory
      that does not exist relative to the markdown file; when the target is a .md file with
      an `#anchor`, a heading producing that GitHub-style anchor must exist in the target
      (a bare `#anchor` is checked against the file itself);
  (b) any text names a design or research note kept outside the repository (the file names
      listed in OUTSIDE_NOTES), or a path into the notes folder beside the repository;
  (c) a path written as `docs/<x>.md`, `benches/<x>`, `fixtures/<x>` or `.ci/<x>` (backticked
      or plain) names something that does not exist. Such paths are resolved against the
      repository root, then against the file's own directory and its parents (a crate's
      README may write paths relative to the crate);
  (d) a citation of the form `docs/<x>.md, "Heading"` (the form code comments use; further
      headings may follow on the same line: `"A", "B" and "C"`) names a heading that does
      not exist in that file.

Tolerated on purpose: URLs (`scheme://...`) are removed before (c) runs; paths with
placeholders (`<`, `{`, `$`) are skipped; `*` globs must match at least one path.

Prints "links: N checked, all resolve" on success. Python 3.11, standard library only.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import unicodedata
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Notes that live outside the repository and must not be cited. Kept without their extension
# here, so that this file does not name them itself.
OUTSIDE_NOTES = ["DESIGN", "PLATFORMS", "RUST-NOTES", "STYLE"]
OUTSIDE_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:" + "|".join(re.escape(n) for n in OUTSIDE_NOTES) + r")\.md\b"
)
# The same notes cited by section number without the extension (a name, then "§").
OUTSIDE_SECTION_RE = re.compile(
    r"(?<![A-Za-z0-9_-])(?:" + "|".join(re.escape(n) for n in OUTSIDE_NOTES) + r")\s*§"
)
SHARED_RE = re.compile(r"\.\./shared\b")

URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)>\]`'\"]*")
# `[text](target)` and `![alt](target)`, with an optional title; the target may be `<...>` or
# contain balanced parentheses.
LINK_RE = re.compile(
    r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]"
    r"\(\s*(<[^>]*>|[^()\s]*(?:\([^()\s]*\)[^()\s]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)"
)
PATH_RE = re.compile(
    r"(?:(?<=[\s`'\"(\[*|:=,])|^)((?:\.\./|\./)*)((?:docs|benches|fixtures|\.ci)/[A-Za-z0-9_.*/-]*)"
)
CITATION_RE = re.compile(r"((?:\.\./)*docs/[A-Za-z0-9_./-]+\.md),\s*\"([^\"]+)\"")
MORE_CITED_RE = re.compile(r"\A(?:\s*,\s*(?:and\s+)?|\s+and\s+|\s*\+\s*)\"([^\"]+)\"")
FENCE_RE = re.compile(r"^\s*(```|~~~)")
HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
HTML_ANCHOR_RE = re.compile(r"<a\s+[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def files_to_scan() -> list[Path]:
    found: list[Path] = []
    for name in ["README.md", "CONTRIBUTING.md", "connectors/README.md"]:
        if (ROOT / name).is_file():
            found.append(ROOT / name)
    for pattern in ["docs/**/*.md", "fixtures/**/*.md"]:
        found.extend(Path(p) for p in glob.glob(str(ROOT / pattern), recursive=True))
    for folder in ["src", "connectors/src", "connectors/tests", "tests"]:
        found.extend(Path(p) for p in glob.glob(str(ROOT / folder / "**" / "*.rs"), recursive=True))
    unique = sorted({p.resolve() for p in found if p.is_file()})
    return [p for p in unique if "target" not in p.relative_to(ROOT).parts]


def rust_comment(line: str) -> str | None:
    """The comment part of a Rust line (`//`, `///`, `//!`), or None. Approximate: a `//`
    counts only when an even number of double quotes precede it (so not inside a string)."""
    start = 0
    while True:
        at = line.find("//", start)
        if at < 0:
            return None
        before = line[:at]
        if before.count('"') % 2 == 0 and not before.rstrip().endswith(":"):
            return line[at:]
        start = at + 2


def text_lines(path: Path) -> list[tuple[int, str, bool]]:
    """(line number, text to check, inside a fenced code block) for each line worth checking."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out: list[tuple[int, str, bool]] = []
    if path.suffix == ".rs":
        for number, line in enumerate(lines, 1):
            comment = rust_comment(line)
            if comment is not None:
                out.append((number, comment, False))
        return out
    in_fence = False
    for number, line in enumerate(lines, 1):
        if FENCE_RE.match(line):
            in_fence = not in_fence
            out.append((number, line, True))
            continue
        out.append((number, line, in_fence))
    return out


def github_slug(heading: str) -> str:
    """The anchor GitHub derives from a heading's text."""
    text = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # images: alt text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    kept = []
    for ch in text:
        if ch in (" ", "-", "_") or ch.isalnum():
            kept.append(ch)
        elif unicodedata.category(ch).startswith(("M",)):
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


_anchor_cache: dict[Path, set[str]] = {}


def anchors_of(path: Path) -> set[str]:
    if path in _anchor_cache:
        return _anchor_cache[path]
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    in_fence = False
    previous = ""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if FENCE_RE.match(line):
            in_fence = not in_fence
            previous = ""
            continue
        if in_fence:
            continue
        heading = None
        match = HEADING_RE.match(line)
        if match:
            heading = match.group(2)
        elif (
            previous.strip()
            and not previous.lstrip().startswith(("|", "-", "*", ">"))
            and re.fullmatch(r"\s{0,3}(=+|-+)\s*", line)
        ):
            heading = previous.strip()  # setext heading
        if heading is not None:
            slug = github_slug(heading)
            count = seen.get(slug, 0)
            anchors.add(slug if count == 0 else f"{slug}-{count}")
            seen[slug] = count + 1
        anchors.update(a.lower() for a in HTML_ANCHOR_RE.findall(line))
        previous = line
    _anchor_cache[path] = anchors
    return anchors


def strip_inline_code(line: str) -> str:
    return re.sub(r"(`+)(.+?)\1", lambda m: " " * len(m.group(0)), line)


def check_links(path: Path, number: int, line: str, problems: list[str]) -> int:
    checked = 0
    for match in LINK_RE.finditer(strip_inline_code(line)):
        target = match.group(1).strip()
        if target.startswith("<") and target.endswith(">"):
            target = target[1:-1].strip()
        if not target:
            continue
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:, ...
            continue
        checked += 1
        file_part, _, anchor = target.partition("#")
        file_part = urllib.parse.unquote(file_part)
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{rel(path)}:{number}"
        if not resolved.exists():
            problems.append(f"{where}: link target does not exist: {target}")
            continue
        if anchor and resolved.is_file() and resolved.suffix.lower() == ".md":
            if urllib.parse.unquote(anchor).lower() not in anchors_of(resolved):
                problems.append(f"{where}: no heading for anchor #{anchor} in {rel(resolved)}")
    return checked


def path_exists(path: Path, candidate: str) -> bool:
    bases = [ROOT]
    folder = path.parent
    while True:
        if folder not in bases:
            bases.append(folder)
        if folder == ROOT or ROOT not in folder.parents:
            break
        folder = folder.parent
    for base in bases:
        full = base / candidate
        if "*" in candidate:
            if glob.glob(str(full)):
                return True
        elif full.exists():
            return True
    return False


def check_paths(path: Path, number: int, line: str, problems: list[str]) -> int:
    checked = 0
    text = URL_RE.sub(" ", line)
    for match in PATH_RE.finditer(text):
        prefix, candidate = match.group(1), match.group(2)
        after = text[match.end() : match.end() + 1]
        if after in ("<", "{", "$"):
            continue  # a placeholder: `fixtures/{name}.json`, `benches/<name>`
        candidate = candidate.rstrip(".")  # the end of a sentence, or an ellipsis
        candidate = candidate.rstrip("/") or candidate
        if "target/" in candidate:
            continue
        checked += 1
        if not path_exists(path, prefix + candidate):
            problems.append(f"{rel(path)}:{number}: path does not exist: {prefix}{candidate}")
    return checked


def check_citations(path: Path, number: int, line: str, problems: list[str]) -> int:
    checked = 0
    for match in CITATION_RE.finditer(line):
        doc = ROOT / re.sub(r"^(?:\.\./)+", "", match.group(1))
        headings = [match.group(2)]
        rest = line[match.end() :]
        while more := MORE_CITED_RE.match(rest):
            headings.append(more.group(1))
            rest = rest[more.end() :]
        if not doc.is_file():
            continue  # reported by check_paths
        for heading in headings:
            checked += 1
            if github_slug(heading) not in anchors_of(doc):
                problems.append(
                    f"{rel(path)}:{number}: no heading \"{heading}\" in {rel(doc)}"
                )
    return checked


def check_outside_notes(path: Path, number: int, line: str, problems: list[str]) -> int:
    found = 0
    for regex, what in [
        (OUTSIDE_RE, "names a note kept outside the repository"),
        (OUTSIDE_SECTION_RE, "cites a section of a note kept outside the repository"),
        (SHARED_RE, "names a path outside the repository"),
    ]:
        for match in regex.finditer(line):
            found += 1
            problems.append(f"{rel(path)}:{number}: {what}: {match.group(0)}")
    return found


def main() -> int:
    problems: list[str] = []
    checked = 0
    for path in files_to_scan():
        is_markdown = path.suffix.lower() == ".md"
        for number, line, in_fence in text_lines(path):
            check_outside_notes(path, number, line, problems)
            if is_markdown and not in_fence:
                checked += check_links(path, number, line, problems)
            checked += check_paths(path, number, line, problems)
            checked += check_citations(path, number, line, problems)
    if problems:
        for problem in problems:
            print(problem)
        print(f"links: {checked} checked, {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"links: {checked} checked, all resolve")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
