"""Shakespeare from Project Gutenberg's 1994 Complete Works: our implementation of LEAF's pipeline.

Raw file (``FILES``): ``1994-01-100.zip`` holding ``100.txt``. LEAF downloads it from
``http://www.gutenberg.org/files/100/old/1994-01-100.zip``; Gutenberg has since moved it one folder
down (``old/old/``), which is the URL used here. Gutenberg publishes no checksum; the md5 below is the
one an FL code base pins for this file (not verified here: no network).

:func:`prepare` follows LEAF's ``preprocess_shakespeare.py`` + ``gen_all_data.py``:

* parsing (:func:`parse_plays`): everything before the 5th line above the second
  ``by William Shakespeare`` is skipped (the sonnets), and parsing stops after LEAF's line 124195 (the
  poems at the end); each ``by William Shakespeare`` starts a play whose title is the first non-blank
  line 2, 3 or 4 lines above; a speech starts on a line ``"  NAME. text"`` (2-space indent) and goes
  on with every later ``"    text"`` line (4 spaces) until the next speaker line (lines matching
  neither pattern are skipped and do not end the speech, as in LEAF); THE COMEDY OF ERRORS,
  set without indentation, uses the same patterns without the indents (its ``ACT`` headings and
  ``<<...>>`` notices end a speech). Names are upper-cased. "Plays" with fewer than 2 characters
  are dropped. Lines that match nothing (headings, stage directions at the margin) are discarded.
* users (:func:`plays_to_all_data`): ``PLAY_CHARACTER`` with spaces and then every run of other
  non-alphanumerics turned into ``_``; characters with <= 2 speech lines are dropped; a user's text
  is its lines joined by newlines, newlines -> spaces, runs of >= 2 spaces -> one; samples are every
  80-character window (stride 1) -> the next character; ``hierarchies`` = the play title.
* LEAF's sampling, ``-k`` filter and the Shakespeare split (first ``n_train`` windows train, test from
  ``n_train + 79``) with :data:`FLAGS` (LEAF's ``paper_experiments/shakespeare.sh``:
  ``-s niid --sf 0.05 -k 64 -tf 0.9 -t sample``, the tutorial's seeds).

What this parser cannot handle (as LEAF's cannot): indented stage directions inside a speech
("    Exit." lines) are kept as part of the speaker's text; speeches whose speaker line is not
``NAME.`` at a 2-space indent (e.g. wrapped speaker names) are lost; a character split over two
spellings that differ in more than case counts as two users.
"""

from __future__ import annotations

import re
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from ...data import DataSource, RemoteFile
from ...errors import DataError
from .._leaf_prepare import LeafFlags, leaf_layout_ready, run_leaf_pipeline

__all__ = [
    "SOURCE",
    "FILES",
    "FLAGS",
    "SEQ_LEN",
    "is_prepared",
    "prepare",
    "parse_plays",
    "plays_to_all_data",
    "user_id",
    "read_gutenberg_text",
]

FILES: tuple[RemoteFile, ...] = (
    RemoteFile(
        "1994-01-100.zip",
        "https://www.gutenberg.org/files/100/old/old/1994-01-100.zip",
        "b8d60664a90939fa7b5d9f4dd064a1d5",
    ),
)
FLAGS = LeafFlags(
    sampling="niid",
    fraction=0.05,
    min_samples=64,
    split="sample",
    train_fraction=0.9,
    sampling_seed=1550262838,
    split_seed=1550262839,
)
SEQ_LEN = 80
LEAF_LAST_LINE = 124195  # LEAF stops here: what follows are the poems, not plays

_AUTHOR = "by William Shakespeare"
_SPEAKER = re.compile(r"^  ([a-zA-Z][a-zA-Z ]*)\. (.*)")
_CONTINUATION = re.compile(r"^    (.*)")
_SPEAKER_ERRORS = re.compile(r"^([a-zA-Z][a-zA-Z ]*)\. (.*)")
_CONTINUATION_ERRORS = re.compile(r"^(.*)")

Plays = list[tuple[str, dict[str, list[str]]]]


def is_prepared(folder: Path) -> bool:
    """``folder/train`` and ``folder/test`` hold LEAF JSON (ours or LEAF's own)."""
    return leaf_layout_ready(folder)


def parse_plays(text: str, *, last_line: int | None = LEAF_LAST_LINE) -> Plays:
    """(title, {CHARACTER: [speech lines]}) per play of the Gutenberg text (rules in the module doc)."""
    lines = text.splitlines(True)[1:]
    seen, start = 0, None
    for i, line in enumerate(lines):
        if _AUTHOR in line:
            seen += 1
            if seen == 2:
                start = max(0, i - 5)
                break
    if start is None:
        raise DataError(
            f"the Gutenberg text has fewer than two {_AUTHOR!r} lines: not the 1994 Complete Works",
            fix="delete 1994-01-100.zip and run `afr data fetch shakespeare` again",
        )
    lines = lines[start:]
    plays: Plays = []
    characters: dict[str, list[str]] = defaultdict(list)
    current: str | None = None
    errors = False
    for i, line in enumerate(lines):
        if last_line is not None and i > last_line - start:
            break
        if _AUTHOR in line:
            current = None
            characters = defaultdict(list)
            title = next((lines[i - k].strip() for k in (2, 3, 4) if i - k >= 0 and lines[i - k].strip()), "")
            if not title:
                raise DataError(f"no play title 2-4 lines above line {start + i + 2} of the Gutenberg text")
            errors = title == "THE COMEDY OF ERRORS"
            plays.append((title, characters))
            continue
        match = (_SPEAKER_ERRORS if errors else _SPEAKER).match(line)
        if match:
            name, speech = match.group(1).upper(), match.group(2)
            if errors and name.startswith("ACT "):
                current = None
            else:
                characters[name].append(speech)
                current = name
            continue
        if current is not None:
            match = (_CONTINUATION_ERRORS if errors else _CONTINUATION).match(line)
            if match:
                if errors and match.group(1).startswith("<"):
                    current = None
                else:
                    characters[current].append(match.group(1))
                continue
    return [(title, chars) for title, chars in plays if len(chars) > 1]


def user_id(play: str, character: str) -> str:
    """LEAF's user id: ``play_character``, spaces -> ``_``, then every run of other non-word characters
    -> ``_`` (so ``PERICLES, PRINCE OF TYRE`` gives ``PERICLES__PRINCE_OF_TYRE``, as in LEAF's files)."""
    return re.sub(r"\W+", "_", f"{play}_{character}".replace(" ", "_"))


def _windows(lines: list[str]) -> tuple[list[str], list[str]]:
    text = "".join(f"{line}\n" for line in lines).replace("\n", " ")
    text = re.sub(r"  +", " ", text)
    xs = [text[i : i + SEQ_LEN] for i in range(len(text) - SEQ_LEN)]
    ys = [text[i + SEQ_LEN] for i in range(len(text) - SEQ_LEN)]
    return xs, ys


def plays_to_all_data(plays: Plays) -> dict[str, Any]:
    """LEAF's all-data dict: one user per (play, character) with > 2 lines, 80-char windows -> next char."""
    lines_of: dict[str, list[str]] = {}
    play_of: dict[str, str] = {}
    for play, characters in plays:
        for character, lines in characters.items():
            if len(lines) <= 2:
                continue
            uid = user_id(play, character)
            lines_of.setdefault(uid, []).extend(lines)
            play_of[uid] = play
    users, user_data = [], {}
    for uid, lines in lines_of.items():
        xs, ys = _windows(lines)
        if xs:
            users.append(uid)
            user_data[uid] = {"x": xs, "y": ys}
    return {
        "users": users,
        "num_samples": [len(user_data[u]["y"]) for u in users],
        "user_data": user_data,
        "hierarchies": [play_of[u] for u in users],
    }


def read_gutenberg_text(archive: Path) -> str:
    """``100.txt`` from the zip (Latin-1, so every byte decodes)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if n.lower().endswith(".txt")]
            name = next((n for n in names if n.rsplit("/", 1)[-1] == "100.txt"), names[0] if names else None)
            if name is None:
                raise DataError(f"{archive.name} holds no .txt file", where=str(archive))
            return zf.read(name).decode("latin-1")
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"cannot open {archive.name}: {exc}",
            where=str(archive),
            fix="delete it and run `afr data fetch shakespeare` again",
        ) from exc


def prepare(folder: Path, *, progress: bool = True, flags: LeafFlags | None = None) -> dict[str, Any]:
    """Gutenberg zip in ``folder`` -> LEAF JSON in ``folder/{train,test}`` (idempotent, atomic).

    ``flags`` defaults to :data:`FLAGS` (looked up at call time); returns the pipeline's summary, or
    ``{}`` when the layout was already there.
    """
    folder = Path(folder)
    flags = FLAGS if flags is None else flags
    if is_prepared(folder):
        return {}
    from tqdm import tqdm

    text = read_gutenberg_text(folder / FILES[0].filename)
    all_data = plays_to_all_data(parse_plays(text))
    if not all_data["users"]:
        raise DataError(
            "no speaking role found in the Gutenberg text",
            where=str(folder / FILES[0].filename),
            fix="delete the zip and run `afr data fetch shakespeare` again",
        )
    return run_leaf_pipeline(
        [("all_data", all_data)],
        folder,
        flags,
        sequence_overlap=SEQ_LEN,
        progress=lambda items: tqdm(items, desc="shakespeare", disable=not progress, leave=False),
    )


SOURCE = DataSource(FILES, is_prepared=is_prepared, prepare=prepare)
"""The official files and the preparation step that turns them into the layout the loader reads."""
