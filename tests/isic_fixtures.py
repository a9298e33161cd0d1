"""Tiny, format-faithful stand-ins for the official ISIC 2019 download and FLamby's static files.

``make_raw_isic(folder)`` writes, in the official layouts:

* ``ISIC_2019_Training_Input.zip``: ``ISIC_2019_Training_Input/<image>.jpg`` (+ LICENSE.txt and
  ATTRIBUTION.txt, as in the real archive), small RGB JPEGs of several aspect ratios;
* ``ISIC_2019_Training_Metadata.csv``: image, age_approx, anatom_site_general, lesion_id, sex
  (``lesion_id`` = BCN_/HAM_/MSK_ + 7 digits, empty for the images FLamby drops);
* ``ISIC_2019_Training_GroundTruth.csv``: image + one-hot MEL NV BCC AK BKL DF VASC SCC UNK as 1.0/0.0;
* ``HAM10000_metadata``: lesion_id, image_id, dx, dx_type, age, sex, localization, dataset;
* ``train_test_split``: image, the nine one-hot columns, target, center, fold, fold2.

Image names follow ISIC's ``ISIC_00xxxxx`` (MSK images with the ``_downsampled`` suffix some real ones
carry). Every center has train and test images of at least two classes.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["IsicFixture", "make_raw_isic", "CONSTANT_RGB", "CLASS_NAMES", "HAM_SOURCES"]

CLASS_NAMES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
HAM_SOURCES = {1: "vidir_molemax", 2: "vidir_modern", 3: "rosendahl", 5: "vienna_dias"}
_PREFIX = {0: "BCN", 1: "HAM", 2: "HAM", 3: "HAM", 4: "MSK", 5: "HAM"}
_DX = ("mel", "nv", "bcc", "akiec", "bkl", "df", "vasc", "bcc")
CONSTANT_RGB = (200, 100, 50)
"""Colour of the first BCN training image: a constant image, to check colour constancy end to end."""
_SIZES = ((60, 45), (45, 60), (64, 48), (50, 50))  # (width, height): landscape, portrait, square


@dataclass
class IsicFixture:
    """What :func:`make_raw_isic` wrote: per center the train/test image names and labels."""

    folder: Path
    train: list[list[str]] = field(default_factory=list)
    test: list[list[str]] = field(default_factory=list)
    train_labels: list[list[int]] = field(default_factory=list)
    test_labels: list[list[int]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    constant_image: str = ""

    @property
    def kept(self) -> list[str]:
        return [n for part in (self.train, self.test) for names in part for n in names]


def _image(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    base = rng.integers(40, 200, size=3)
    slope = rng.uniform(-1.5, 1.5, size=(3, 2))
    pixels = np.stack([base[c] + slope[c, 0] * x + slope[c, 1] * y for c in range(3)], axis=-1)
    blob = (x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(size) / 4) ** 2
    pixels[blob] *= 0.5  # a darker "lesion" in the middle
    pixels += rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def make_raw_isic(
    folder: Path, *, train_per_center: int = 8, test_per_center: int = 4, seed: int = 0
) -> IsicFixture:
    """Write the five raw files into ``folder`` and return what they contain."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    fixture = IsicFixture(folder)
    images: dict[str, bytes] = {}
    metadata, truth, ham, split = [], [], [], []
    number = 1000

    def onehot(label: int | None) -> list[str]:
        return ["1.0" if label == k else "0.0" for k in range(9)]  # the ninth column is UNK

    for center in range(6):
        fixture.train.append([])
        fixture.test.append([])
        fixture.train_labels.append([])
        fixture.test_labels.append([])
        for fold, count in (("train", train_per_center), ("test", test_per_center)):
            for i in range(count):
                name = f"ISIC_{number:07d}" + ("_downsampled" if center == 4 and i % 2 else "")
                number += 1
                label = (center + i // 4) % 8 if fold == "train" else (center + i) % 2 + center % 3
                lesion = f"{_PREFIX[center]}_{number:07d}"
                if not fixture.constant_image:
                    fixture.constant_image = name
                    picture = Image.new("RGB", (60, 45), CONSTANT_RGB)
                else:
                    picture = _image(rng, _SIZES[number % len(_SIZES)])
                images[name] = _jpeg(picture)
                metadata.append([name, 55.0, "anterior torso", lesion, "female"])
                truth.append([name, *onehot(label)])
                if center in HAM_SOURCES:
                    ham.append([lesion, name, _DX[label], "histo", 50.0, "male", "back", HAM_SOURCES[center]])
                split.append([name, *onehot(label), label, center, fold, f"{fold}_{center}"])
    for _ in range(2):  # images without a lesion_id: FLamby drops them
        name = f"ISIC_{number:07d}"
        number += 1
        images[name] = _jpeg(_image(rng, (40, 30)))
        metadata.append([name, 35.0, "", "", "male"])
        truth.append([name, *onehot(1)])
        fixture.dropped.append(name)
    ham.append(["HAM_0099999", "ISIC_0099999", "nv", "follow_up", 40.0, "female", "trunk", "vidir_modern"])

    order = rng.permutation(len(metadata))  # the official CSVs are sorted by name; keep ours shuffled
    metadata = [metadata[i] for i in order]
    truth = [truth[i] for i in order]
    _write_csv(
        folder / "ISIC_2019_Training_Metadata.csv",
        ["image", "age_approx", "anatom_site_general", "lesion_id", "sex"],
        metadata,
    )
    _write_csv(folder / "ISIC_2019_Training_GroundTruth.csv", ["image", *CLASS_NAMES, "UNK"], truth)
    _write_csv(
        folder / "HAM10000_metadata",
        ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset"],
        ham,
    )
    split = [split[i] for i in rng.permutation(len(split))]
    _write_csv(
        folder / "train_test_split",
        ["image", *CLASS_NAMES, "UNK", "target", "center", "fold", "fold2"],
        split,
    )
    # The loader reads each client's rows in split-file order: report them in that order.
    for part in (fixture.train, fixture.test, fixture.train_labels, fixture.test_labels):
        for names in part:
            names.clear()
    for row in split:
        name, label, center, fold = row[0], row[-4], row[-3], row[-2]
        getattr(fixture, fold)[center].append(name)
        getattr(fixture, f"{fold}_labels")[center].append(label)
    with zipfile.ZipFile(folder / "ISIC_2019_Training_Input.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ISIC_2019_Training_Input/", b"")
        archive.writestr("ISIC_2019_Training_Input/LICENSE.txt", b"CC-BY-NC\n")
        archive.writestr("ISIC_2019_Training_Input/ATTRIBUTION.txt", b"BCN_20000, HAM10000, MSK\n")
        for name in sorted(images):
            archive.writestr(f"ISIC_2019_Training_Input/{name}.jpg", images[name])
    return fixture
