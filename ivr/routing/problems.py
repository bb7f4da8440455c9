"""A validation problem an admin can act on: `FILE:LINE: what is wrong and how to fix it`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    path: str
    line: int      # 1-based; 0 when the whole file is at fault
    message: str   # what is wrong and how to fix it

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class ConfigError(Exception):
    """Raised with every problem found, so the admin sees them all at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
