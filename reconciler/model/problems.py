"""What is wrong with an inventory, and where: the one error type users see.

Every check (YAML parsing, the models, the site-wide rules) reports ``Problem``
values that name the file and the path inside it; the loader then fills in line
and column from the YAML and raises one ``InventoryError`` holding them all.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

PathPart = str | int


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    path: tuple[PathPart, ...]
    message: str
    line: int | None = None
    column: int | None = None

    @property
    def field(self) -> str:
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text

    def located(self, line: int, column: int) -> Problem:
        return replace(self, line=line, column=column)

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column}"
        field = f" {self.field}:" if self.path else ""
        return f"{where}:{field} {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "field": self.field,
            "message": self.message,
        }


class InventoryError(Exception):
    """An inventory revision is invalid; ``problems`` lists every reason at once."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(
            problems, key=lambda p: (p.file, p.line or 0, p.column or 0, p.message)
        )
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"inventory is invalid ({count} problem{'s' * (count != 1)}):\n{lines}")
