"""User-facing errors: each says what went wrong, where, and how to fix it."""

from __future__ import annotations

__all__ = [
    "AFRError",
    "ConfigError",
    "EndpointError",
    "DataError",
    "ChecksumError",
    "TrainingFailure",
    "RunsFailed",
    "CampaignFailure",
]


class AFRError(Exception):
    """Base of every error AFR reports to a user as one clear message (no traceback)."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [self.what]
        if self.where:
            parts.append(f"(in {self.where})")
        text = " ".join(parts)
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(AFRError):
    """A malformed or unknown configuration value."""


class EndpointError(ConfigError):
    """An LLM agent's endpoint cannot serve the campaign: no server answers at its URL, the key is refused,
    or the model is unknown there (exit code 2: a setup to fix; nothing was run or charged).

    Told on one line (``what (in where); fix: ...``): it is the whole story, and the URL must stay visible."""

    @property
    def message(self) -> str:
        text = self.what
        if self.where:
            text += f" (in {self.where})"
        return f"{text}; fix: {self.fix}" if self.fix else text


class DataError(AFRError):
    """Data missing, unreadable, or not in the expected format."""


class ChecksumError(DataError):
    """A downloaded file does not match its published checksum."""


class TrainingFailure(AFRError):
    """A federated run could not finish (non-finite loss or weights, budget breach)."""


class RunsFailed(AFRError):
    """Runs were made and none gave a result (exit code 1, not 2: the input was well formed)."""


class CampaignFailure(RunsFailed):
    """A campaign cannot go on, or ended with nothing to compare: its preflight run of the baseline failed,
    the baseline's first search run failed, or an arm has no successful run."""
