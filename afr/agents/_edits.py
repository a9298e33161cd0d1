"""Turning a model's reply into a recipe file: a whole fenced file, or SEARCH/REPLACE edits of a parent.

Parsing is tolerant of chatter around the code but never guesses: a reply that yields no usable file
raises :class:`ReplyError`, whose message is written for the model (it is sent back verbatim so the
model can try again).

* Whole file: the last fenced code block tagged ``python`` (or ``py``, or untagged) that is a recipe
  by Python's parser: it parses, and defines a class derived from one of the given ``bases`` (the
  baseline's class and the recipe bases; directly, or through a class defined earlier in the block).
  The word ``class`` in a comment or a string makes no recipe. Without fences, the reply itself from its
  first line of code on, under the same test.
* SEARCH/REPLACE: blocks ::

      <<<<<<< SEARCH
      lines of the parent, verbatim
      =======
      new lines
      >>>>>>> REPLACE

  applied in order to the parent file: an exact line match first, then a match that ignores
  whitespace differences within lines (the replacement is re-indented to the file's indentation).
  A block whose SEARCH lines match nowhere, or in more than one place, makes the reply unusable.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection
from dataclasses import dataclass

from afr._parsing import parse_python

__all__ = ["ParsedReply", "ReplyError", "parse_reply", "apply_edits", "extract_file", "extract_note"]

_FENCE_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
_SEARCH = re.compile(r"^[ \t]*<{5,9}[ \t]*SEARCH\b.*$")
_DIVIDER = re.compile(r"^[ \t]*={5,9}[ \t]*$")
_REPLACE = re.compile(r"^[ \t]*>{5,9}[ \t]*REPLACE\b.*$")
_PYTHON_TAGS = {"", "python", "py", "python3"}
_CODE_START = re.compile(r"^(from |import |class |@|\"\"\"|'''|#)")
_NOTE_LABEL = re.compile(r"^(rationale|idea|summary|change|changes|fix|note)\s*:\s*", re.IGNORECASE)

NOTE_MAX_LINES = 3
NOTE_MAX_CHARS = 300


class ReplyError(ValueError):
    """The reply yields no usable recipe file; the message tells the model what to do instead."""


@dataclass(frozen=True)
class ParsedReply:
    source: str
    note: str
    kind: str
    """``whole`` (a complete file) or ``search_replace`` (edits applied to the parent)."""


@dataclass(frozen=True)
class _Fenced:
    lang: str
    code: str
    first: int  # index of the opening fence line
    last: int  # index of the closing fence line (== len(lines) when never closed)
    closed: bool


@dataclass(frozen=True)
class _Edit:
    search: list[str]
    replace: list[str]
    first: int
    last: int


def parse_reply(
    reply: str, parent: str, *, finish_reason: str | None = None, bases: Collection[str] | None = None
) -> ParsedReply:
    """The recipe file a reply describes: SEARCH/REPLACE blocks if it has any, else a whole file whose
    recipe class derives from one of ``bases`` (None: any class; the first is named in errors)."""
    if not reply.strip():
        if finish_reason == "length":
            raise ReplyError(
                "your reply was empty: it hit the token limit before any text; answer more briefly"
            )
        raise ReplyError("your reply was empty")
    lines = reply.splitlines()
    edits = _edit_blocks(lines)
    if edits:
        source = apply_edits(parent, edits)
        if source == _with_newline(parent):
            raise ReplyError("your SEARCH/REPLACE blocks leave the parent file unchanged: make a real change")
        spans = [(e.first, e.last) for e in edits]
        return ParsedReply(source, extract_note(lines, spans), "search_replace")
    try:
        source, spans = _whole_file(lines, bases)
    except ReplyError as exc:
        if finish_reason == "length":
            raise ReplyError(f"{exc}; your reply was cut off at the token limit: keep it shorter") from exc
        raise
    return ParsedReply(source, extract_note(lines, spans), "whole")


def extract_file(reply: str, bases: Collection[str] | None = None) -> str:
    """The whole recipe file in ``reply`` (see the module docstring)."""
    return _whole_file(reply.splitlines(), bases)[0]


def extract_note(lines: list[str], code_spans: list[tuple[int, int]]) -> str:
    """The rationale: the first lines of prose outside the code (at most 3 lines, 300 characters)."""
    inside = set()
    for first, last in code_spans:
        inside.update(range(first, last + 1))
    picked: list[str] = []
    for i, line in enumerate(lines):
        if i in inside or _FENCE_OPEN.match(line):
            if picked:
                break
            continue
        text = line.strip().strip("*_#>").strip()
        text = _NOTE_LABEL.sub("", text).strip("*_ ").strip()
        if not text:
            if picked:
                break
            continue
        if text.startswith("- ") or text.startswith("* "):
            text = text[2:]
        picked.append(text)
        if len(picked) >= NOTE_MAX_LINES:
            break
    note = " ".join(picked)
    if len(note) > NOTE_MAX_CHARS:
        note = note[: NOTE_MAX_CHARS - 1].rstrip() + "…"
    return note


# --- whole file ------------------------------------------------------------------------------------


def _fenced_blocks(lines: list[str]) -> list[_Fenced]:
    blocks, i = [], 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if match is None:
            i += 1
            continue
        fence = match["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            j += 1
        info = match["info"].strip().split()
        lang = info[0].lower().lstrip("{.").rstrip("}") if info else ""
        blocks.append(_Fenced(lang, "\n".join(lines[i + 1 : j]), i, j, j < len(lines)))
        i = j + 1
    return blocks


def _whole_file(lines: list[str], bases: Collection[str] | None) -> tuple[str, list[tuple[int, int]]]:
    fenced = _fenced_blocks(lines)
    python = [b for b in fenced if b.lang in _PYTHON_TAGS]
    usable = [b for b in python if _defines_recipe(b.code, bases)]
    if usable:
        block = usable[-1]
        return _with_newline(block.code.strip("\n")), [(block.first, block.last)]
    wanted = _wanted(bases)
    if python:
        last = python[-1]
        problem = _syntax_problem(last.code)
        if not last.closed and problem:
            raise ReplyError(
                "the code block of your reply is never closed and is not valid Python (the reply was "
                "probably cut off): return the complete file in one closed ```python block"
            )
        if problem:
            raise ReplyError(
                f"the ```python block of your reply is not valid Python ({problem}): return the complete "
                f"file in one ```python block that defines {wanted}"
            )
        raise ReplyError(
            f"no code block of your reply defines {wanted}: return the complete file in one ```python "
            "block that defines it"
        )
    if fenced:
        raise ReplyError(
            f"no code block of your reply is Python: return the complete file in one ```python block "
            f"that defines {wanted}"
        )
    for start, line in enumerate(lines):
        if _CODE_START.match(line):
            code = "\n".join(lines[start:]).strip("\n")
            if _defines_recipe(code, bases):
                return _with_newline(code), [(start, len(lines) - 1)]
            break
    raise ReplyError(
        "your reply has no ```python code block: return the complete recipe file in one "
        "```python block (or SEARCH/REPLACE blocks against the parent file)"
    )


def _wanted(bases: Collection[str] | None) -> str:
    if not bases:
        return "a recipe class"
    first = next(iter(bases))  # the baseline's class comes first
    return f"a class derived from `{first}`" + (" (or another recipe base)" if len(bases) > 1 else "")


def _defines_recipe(code: str, bases: Collection[str] | None) -> bool:
    """Whether ``code`` parses and defines, at module level, a class derived from one of ``bases``; any
    class when ``bases`` is None. A class that takes a base's own name (a user's baseline kept in the file)
    is that base, not the recipe: the class after it that derives from it is."""
    try:
        tree = parse_python(code)
    except (SyntaxError, ValueError):
        return False
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        if bases is None:
            return True
        names = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
        if names & set(bases) and node.name not in bases:
            return True
    return False


def _syntax_problem(code: str) -> str:
    """'line N: message' when ``code`` is not valid Python, '' when it is."""
    try:
        parse_python(code)
    except SyntaxError as exc:
        return f"line {exc.lineno}: {exc.msg}"
    except ValueError as exc:
        return str(exc)
    return ""


def _parses(code: str) -> bool:
    try:
        parse_python(code)
    except (SyntaxError, ValueError):
        return False
    return True


def _with_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


# --- SEARCH/REPLACE --------------------------------------------------------------------------------


def _edit_blocks(lines: list[str]) -> list[_Edit]:
    edits: list[_Edit] = []
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            if _REPLACE.match(lines[i]):
                raise ReplyError(
                    f"SEARCH/REPLACE block {len(edits) + 1} is malformed: a '>>>>>>> REPLACE' line "
                    "without '<<<<<<< SEARCH' and '=======' before it"
                )
            i += 1
            continue
        n = len(edits) + 1
        start, j = i, i + 1
        while j < len(lines) and not _DIVIDER.match(lines[j]):
            if _SEARCH.match(lines[j]) or _REPLACE.match(lines[j]):
                raise ReplyError(f"SEARCH/REPLACE block {n} has no '=======' line between its two parts")
            j += 1
        if j == len(lines):
            raise ReplyError(f"SEARCH/REPLACE block {n} has no '=======' line between its two parts")
        search = lines[i + 1 : j]
        k = j + 1
        while k < len(lines) and not _REPLACE.match(lines[k]):
            if _SEARCH.match(lines[k]) or _DIVIDER.match(lines[k]):
                raise ReplyError(f"SEARCH/REPLACE block {n} is not closed by a '>>>>>>> REPLACE' line")
            k += 1
        if k == len(lines):
            raise ReplyError(f"SEARCH/REPLACE block {n} is not closed by a '>>>>>>> REPLACE' line")
        edits.append(_Edit(search, lines[j + 1 : k], start, k))
        i = k + 1
    return edits


def apply_edits(parent: str, edits: list[_Edit]) -> str:
    """``parent`` with every edit applied in order (raises :class:`ReplyError` if one does not apply)."""
    text = _with_newline(parent)
    for n, edit in enumerate(edits, 1):
        text = _apply_one(text, edit, n)
    return _with_newline(text)


def _apply_one(text: str, edit: _Edit, n: int) -> str:
    search = _trim_blank(edit.search)
    if not search:
        raise ReplyError(
            f"SEARCH/REPLACE block {n} has an empty SEARCH part: quote the existing lines to replace"
        )
    file_lines = text.split("\n")
    m = len(search)
    exact = [i for i in range(len(file_lines) - m + 1) if file_lines[i : i + m] == search]
    if len(exact) == 1:
        i = exact[0]
        return "\n".join(file_lines[:i] + edit.replace + file_lines[i + m :])
    if len(exact) > 1:
        raise _ambiguous(n, len(exact))
    wanted = [_norm(line) for line in search]
    loose = [i for i in range(len(file_lines) - m + 1) if [_norm(x) for x in file_lines[i : i + m]] == wanted]
    if len(loose) == 1:
        i = loose[0]
        replace = _reindent(edit.replace, _indent_of(search), _indent_of(file_lines[i : i + m]))
        return "\n".join(file_lines[:i] + replace + file_lines[i + m :])
    if len(loose) > 1:
        raise _ambiguous(n, len(loose))
    first = next(line for line in search if line.strip())
    raise ReplyError(
        f"SEARCH/REPLACE block {n} does not match the parent file: its SEARCH part must repeat existing "
        f"lines of the parent exactly (first SEARCH line: {first.strip()[:80]!r})"
    )


def _ambiguous(n: int, count: int) -> ReplyError:
    return ReplyError(
        f"SEARCH/REPLACE block {n} matches {count} places in the parent file: add neighbouring lines to "
        "its SEARCH part so that it matches exactly one place"
    )


def _trim_blank(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _norm(line: str) -> str:
    return " ".join(line.split())


def _indent_of(lines: list[str]) -> str:
    for line in lines:
        if line.strip():
            return line[: len(line) - len(line.lstrip())]
    return ""


def _reindent(lines: list[str], old: str, new: str) -> list[str]:
    if old == new:
        return list(lines)
    out = []
    for line in lines:
        if not line.strip():
            out.append("")
        elif line.startswith(old):
            out.append(new + line[len(old) :])
        else:
            out.append(line)
    return out
