"""Seeded generators of small LEAF fixtures in the exact upstream formats, written into a test's tmp dir.

* Sent140: Stanford's ``trainingandtestdata.zip`` (two headerless, fully quoted ISO-8859-1 CSVs:
  polarity, id, date, query, user, text).
* CelebA: ``img_align_celeba.zip`` (178x218 JPEGs; or the extracted folder), ``list_attr_celeba.txt``
  (count line, 40 attribute names, then ``<file> -1  1 ...`` rows) and ``identity_CelebA.txt``.
* Reddit: LEAF's ``reddit_subsampled.zip`` (``new_small_data/{train,val,test}_data.json``; per user a
  list of comments, each a list of 10-token rows, and per comment a dict with ``target_tokens`` and
  ``count_tokens``), built here from raw comments the way LEAF's ``preprocess.py`` does.
* Any dataset: plain LEAF JSON (``users``, ``num_samples``, ``user_data``) for the "already
  preprocessed" path.

Every generator returns what it wrote (users and their samples) so tests can check the loaders
against the source of truth. These generators are written independently of the code under test.
"""

from __future__ import annotations

import csv
import io
import json
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

__all__ = [
    "CELEBA_ATTRIBUTES",
    "Sent140Raw",
    "CelebaRaw",
    "RedditRaw",
    "write_sent140_raw",
    "write_celeba_raw",
    "write_reddit_raw",
    "write_leaf_json",
    "reddit_rows",
]

# The 40 attribute columns of list_attr_celeba.txt, in the official order (Smiling is column 31).
CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]

_WORDS = [
    "i",
    "love",
    "hate",
    "this",
    "day",
    "so",
    "much",
    "not",
    "good",
    "bad",
    "happy",
    "sad",
    "work",
    "today",
    "tomorrow",
    "the",
    "a",
    "is",
    "was",
    "my",
    "you",
    "we",
    "they",
    "it",
    "fun",
    "great",
    "awful",
    "cool",
    "wow",
    "really",
]


def write_leaf_json(path: Path, user_data: dict[str, dict[str, list]], **extra: object) -> None:
    """One LEAF JSON file: ``users``, ``num_samples`` (= len(y)), ``user_data`` (+ ``extra`` keys)."""
    users = list(user_data)
    doc = {"users": users, "num_samples": [len(user_data[u]["y"]) for u in users], "user_data": user_data}
    doc.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


# --- Sent140 -------------------------------------------------------------------------------------------


@dataclass
class Sent140Raw:
    """What :func:`write_sent140_raw` wrote: per user, their (text, polarity, source) rows in file order."""

    path: Path
    tweets: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    def marker(self, user: str) -> str:
        """A word only this user's tweets contain (to trace their rows through the pipeline)."""
        return f"tag{user.lower()}"


def write_sent140_raw(
    folder: Path, *, users: int = 12, per_user: tuple[int, int] = (3, 8), seed: int = 0
) -> Sent140Raw:
    """``<folder>/trainingandtestdata.zip`` with both CSVs; every user gets ``per_user`` tweets (some
    in the test CSV, polarity 0/2/4 there, 0/4 in training), each holding the user's marker word,
    Latin-1 characters, quotes and commas in places."""
    rng = random.Random(seed)
    out = Sent140Raw(folder / "trainingandtestdata.zip")
    train_rows: list[list[str]] = []
    test_rows: list[list[str]] = []
    for k in range(users):
        user = f"User_{k:02d}"
        out.tweets[user] = []
        for j in range(rng.randint(*per_user)):
            in_test = j == 0 and k % 3 == 0
            polarity = rng.choice(["0", "2", "4"] if in_test else ["0", "4"])
            words = [rng.choice(_WORDS) for _ in range(rng.randint(2, 12))]
            words.insert(rng.randrange(len(words) + 1), out.marker(user))
            text = " ".join(words) + rng.choice(["", "!", " ...", ', café "naïve"', " ;)"])
            tweet_id = str(1467810000 + 97 * k + j)
            date = f"Mon Apr 06 22:{k:02d}:{j:02d} PDT 2009"
            query = "kindle2" if in_test else "NO_QUERY"
            (test_rows if in_test else train_rows).append([polarity, tweet_id, date, query, user, text])
            out.tweets[user].append((text, polarity, "test" if in_test else "training"))
    rng.shuffle(train_rows)  # the real file is not sorted by user

    def encoded(rows: list[list[str]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
        return buffer.getvalue().encode("ISO-8859-1")

    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out.path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("testdata.manual.2009.06.14.csv", encoded(test_rows))
        archive.writestr("training.1600000.processed.noemoticon.csv", encoded(train_rows))
    return out


# --- CelebA ----------------------------------------------------------------------------------------------


@dataclass
class CelebaRaw:
    """What :func:`write_celeba_raw` wrote: per celebrity id, their (filename, smiling 0/1) pairs."""

    folder: Path
    images: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @staticmethod
    def colour(celeb: str) -> tuple[int, int, int]:
        """The flat colour of every image of ``celeb`` (traces a celebrity's images through the pipeline)."""
        k = int(celeb)
        return (17 * k) % 256, (101 * k + 50) % 256, (53 * k + 7) % 256


def write_celeba_raw(
    folder: Path,
    *,
    celebs: int = 10,
    per_celeb: tuple[int, int] = (5, 9),
    small_celebs: int = 2,
    seed: int = 0,
    zipped: bool = True,
) -> CelebaRaw:
    """The three official CelebA files in ``folder``: images (zip, or the extracted folder with
    ``zipped=False``), attributes and identities. ``small_celebs`` extra celebrities get fewer than 5
    images (LEAF drops them). Images are flat-coloured 178x218 JPEGs, colour = :meth:`CelebaRaw.colour`."""
    rng = random.Random(seed)
    out = CelebaRaw(folder)
    rows: list[tuple[str, str, int]] = []  # filename, celeb id, smiling
    counts = [rng.randint(*per_celeb) for _ in range(celebs)] + [
        rng.randint(1, 4) for _ in range(small_celebs)
    ]
    pending = [1000 + 37 * k for k, n in enumerate(counts) for _ in range(n)]
    rng.shuffle(pending)  # images of one celebrity are scattered through the file, as in the real data
    for index, celeb_number in enumerate(pending, start=1):
        celeb = str(celeb_number)
        filename = f"{index:06d}.jpg"
        smiling = rng.randint(0, 1)
        rows.append((filename, celeb, smiling))
        out.images.setdefault(celeb, []).append((filename, smiling))
    folder.mkdir(parents=True, exist_ok=True)

    def jpeg(celeb: str) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (178, 218), CelebaRaw.colour(celeb)).save(buffer, format="JPEG", quality=95)
        return buffer.getvalue()

    if zipped:
        with zipfile.ZipFile(folder / "img_align_celeba.zip", "w", zipfile.ZIP_STORED) as archive:
            for filename, celeb, _ in rows:
                archive.writestr(f"img_align_celeba/{filename}", jpeg(celeb))
    else:
        images = folder / "img_align_celeba"
        images.mkdir(exist_ok=True)
        for filename, celeb, _ in rows:
            (images / filename).write_bytes(jpeg(celeb))

    smiling_col = CELEBA_ATTRIBUTES.index("Smiling")
    lines = [str(len(rows)), " ".join(CELEBA_ATTRIBUTES) + " "]
    for filename, _, smiling in rows:
        values = [rng.choice((-1, 1)) for _ in CELEBA_ATTRIBUTES]
        values[smiling_col] = 1 if smiling else -1
        lines.append(filename + " " + " ".join(f"{v:2d}" for v in values))
    (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (folder / "identity_CelebA.txt").write_text("".join(f"{f} {c}\n" for f, c, _ in rows))
    return out


# --- Reddit ------------------------------------------------------------------------------------------------


def reddit_rows(
    comment: str, seq_len: int = 10
) -> tuple[list[list[str]], list[list[str]], list[list[float]]]:
    """LEAF's ``create_seqs`` for one comment: inputs ``<BOS> tokens <EOS>``, targets
    ``tokens <EOS> <PAD>``, ones under every input token; all padded with ``<PAD>`` / 0 to a multiple of
    ``seq_len`` and cut into rows."""
    tokens = comment.split()
    inputs = ["<BOS>", *tokens, "<EOS>"]
    targets = [*tokens, "<EOS>", "<PAD>"]
    counts = [1.0] * len(inputs)
    width = -(-len(inputs) // seq_len) * seq_len
    inputs += ["<PAD>"] * (width - len(inputs))
    targets += ["<PAD>"] * (width - len(targets))
    counts += [0.0] * (width - len(counts))

    def cut(values: list) -> list[list]:
        return [values[i : i + seq_len] for i in range(0, width, seq_len)]

    return cut(inputs), cut(targets), cut(counts)


@dataclass
class RedditRaw:
    """What :func:`write_reddit_raw` wrote: per split and user, the raw comments in time order."""

    path: Path
    comments: dict[str, dict[str, list[str]]] = field(default_factory=dict)


def write_reddit_raw(
    folder: Path, *, users: int = 8, per_user: tuple[int, int] = (5, 9), seed: int = 0
) -> RedditRaw:
    """``<folder>/reddit_subsampled.zip`` laid out as LEAF's preprocessed subsample: each user's comments
    split by time 60/20/20 into train/val/test, every comment as 10-token rows with targets and masks.
    User ``k``'s comments use the word ``w<k>`` (traceable) plus common words."""
    rng = random.Random(seed)
    out = RedditRaw(folder / "reddit_subsampled.zip")
    docs: dict[str, dict[str, dict]] = {split: {} for split in ("train", "val", "test")}
    counts: dict[str, int] = {}
    for k in range(users):
        user = str(k + 1)
        n = rng.randint(*per_user)
        counts[user] = n
        comments = []
        for _ in range(n):
            words = [rng.choice(_WORDS[:12]) for _ in range(rng.randint(5, 23))]
            words.insert(rng.randrange(len(words)), f"w{k}")
            comments.append(" ".join(words))
        times = sorted(rng.uniform(1.512e9, 1.5147e9) for _ in range(n))
        bounds = {"train": (0, int(0.6 * n)), "val": (int(0.6 * n), int(0.8 * n)), "test": (int(0.8 * n), n)}
        for split, (lo, hi) in bounds.items():
            xs, ys = [], []
            for comment, created in zip(comments[lo:hi], times[lo:hi], strict=True):
                rows, targets, masks = reddit_rows(comment)
                xs.append(rows)
                ys.append(
                    {
                        "subreddit": rng.choice(["AskReddit", "nba", "pics"]),
                        "created_utc": created,
                        "score": rng.randint(-3, 40),
                        "target_tokens": targets,
                        "count_tokens": masks,
                    }
                )
            docs[split][user] = {"x": xs, "y": ys}
            out.comments.setdefault(split, {})[user] = comments[lo:hi]
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out.path, "w", zipfile.ZIP_DEFLATED) as archive:
        for split, user_data in docs.items():
            users_list = list(user_data)
            doc = {
                "users": users_list,
                "num_samples": [counts[u] for u in users_list],  # LEAF keeps the all-splits count here
                "user_data": user_data,
            }
            archive.writestr(f"new_small_data/{split}_data.json", json.dumps(doc))
    return out
