"""What is wrong with the content: every Problem names a file, a field and a reason."""

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the content, precise enough to fix without guessing."""

    file: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.reason}"


class ContentError(Exception):
    """The content failed validation; `problems` lists every issue found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__(f"{len(problems)} problem(s) in content")


def describe(problems: list[Problem]) -> str:
    """Human-readable list of problems, one per line."""
    return "\n".join(str(problem) for problem in problems)
