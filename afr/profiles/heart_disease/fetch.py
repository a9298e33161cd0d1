"""The official files of Fed-Heart-Disease: the four processed center files of the UCI repository."""

from __future__ import annotations

from ...data import DataSource, RemoteFile

__all__ = ["SOURCE", "FILES"]

_UCI_HEART = "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease"


def _uci_heart(filename: str, md5: str) -> RemoteFile:
    return RemoteFile(filename, f"{_UCI_HEART}/{filename}", md5)


FILES: tuple[RemoteFile, ...] = (
    _uci_heart("processed.cleveland.data", "2d91a8ff69cfd9616aa47b59d6f843db"),
    _uci_heart("processed.hungarian.data", "22e96bee155b5973568101c93b3705f6"),
    _uci_heart("processed.switzerland.data", "9a87f7577310b3917730d06ba9349e20"),
    _uci_heart("processed.va.data", "4249d03ca7711e84f4444768c9426170"),
)
SOURCE = DataSource(FILES)
