"""What is wrong with a mapping row or a payload value, said so a person can fix it."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Problem:
    row_index: int | None  # position of the row in the mapping (0-based); None: the mapping as a whole
    field: str  # the CRM field concerned ("" when none)
    message: str
    severity: str = ERROR  # ERROR blocks saving and activation; WARNING is shown and allowed
    # The part of the row the problem is about (source, target_field, transform, default…), so a
    # form can show it beside the right input.
    column: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        where = f"Row {self.row_index + 1}: " if self.row_index is not None else ""
        return where + self.message


def errors(problems: list[Problem]) -> list[Problem]:
    return [problem for problem in problems if problem.is_error]
