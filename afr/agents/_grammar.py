"""Constrained output for llama.cpp-compatible servers: a GBNF grammar for "rationale + one python block".

With ``agent.grammar=true`` every request carries ``grammar`` (through ``extra_body``; llama.cpp's
``llama-server`` and ``llama-cpp-python``'s server read it) so that a reply can only be: one line of
rationale, a blank line, then one fenced ``python`` block whose code imports from ``afr.recipe`` (for a
shipped baseline) and defines a class derived from the baseline's class, then the closing fence. Small
models that wander off into prose or several blocks cannot; whether the code inside is good is still the
validator's call. Servers without GBNF support (Ollama, vLLM, hosted APIs) reject or ignore the field:
leave it off for them.
"""

from __future__ import annotations

import re

from ._brief import TaskBrief

__all__ = ["reply_grammar"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def reply_grammar(brief: TaskBrief) -> str:
    """The GBNF grammar of a whole-file reply for this task (the baseline's class names the base)."""
    base = brief.baseline.class_name
    if not _IDENT.match(base):  # a class name is an identifier; anything else would break the grammar
        raise ValueError(f"not a class name: {base!r}")
    recipe_names = [n for n in brief.recipe_names if _IDENT.match(n)] or [base, "scalar"]
    modules = [m for m in brief.allowed_modules if re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", m)] or [
        "torch",
        "math",
    ]
    if brief.baseline.shipped:  # imports only (of allowed names and modules), then the class
        header = 'header ::= "from afr.recipe import " rname (", " rname)* "\\n" iline*'
    else:  # a user's baseline: the candidate carries its code, any lines before the new class
        header = "header ::= hline*"
    return "\n".join(
        [
            'root ::= rationale "\\n\\n```python\\n" header "\\n\\nclass " ident "(" base "):\\n" body "```"',
            "rationale ::= [A-Za-z] [^\\n`]*",
            header,
            "names ::= [A-Za-z_] [A-Za-z0-9_, ]*",
            'hline ::= [^\\n`]* "\\n"',
            'iline ::= ("import " mod | "from " mod " import " names)? "\\n"',
            "mod ::= " + " | ".join(_literal(m) for m in sorted(modules, key=lambda m: (-len(m), m))),
            "rname ::= " + " | ".join(_literal(n) for n in sorted(recipe_names, key=lambda n: (-len(n), n))),
            "ident ::= [A-Z] [A-Za-z0-9_]*",
            f"base ::= {_literal(base)}",
            "body ::= bline bline*",
            'bline ::= ("    " [^\\n`]*)? "\\n"',
        ]
    )
