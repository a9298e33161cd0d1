"""The official files of Fed-TCGA-BRCA: FLamby's tables, pinned to one FLamby commit."""

from __future__ import annotations

from pathlib import PurePosixPath

from ...data import DataSource, RemoteFile

__all__ = ["SOURCE", "FILES"]

_FLAMBY_COMMIT = "edacf54d5211520583b0133d55ac39b6fda8324b"
_FLAMBY_RAW = f"https://raw.githubusercontent.com/owkin/FLamby/{_FLAMBY_COMMIT}"


def _flamby(repo_path: str, md5: str) -> RemoteFile:
    return RemoteFile(PurePosixPath(repo_path).name, f"{_FLAMBY_RAW}/{repo_path}", md5)


FILES: tuple[RemoteFile, ...] = (
    _flamby("flamby/datasets/fed_tcga_brca/brca.csv", "989df4ddec084f749d9593146d7ba92f"),
    _flamby("flamby/datasets/fed_tcga_brca/centers.csv", "03f23a40c35dfb8460b910d090e98dd5"),
    _flamby(
        "flamby/datasets/fed_tcga_brca/dataset_creation_scripts/train_test_split.csv",
        "e648057e47463ee7763924d779cd7f2d",
    ),
)
SOURCE = DataSource(FILES)
