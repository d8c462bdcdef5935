"""The README's config reference, generated from the config model (the one place keys are declared).

python -m components.cli.config_reference          # print the table
python -m components.cli.config_reference --write  # refresh README.md between its markers
"""

from __future__ import annotations

import sys
from pathlib import Path

from components.core.config import NAMESPACE
from components.core.config_load import reference_rows

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"
README = Path(__file__).resolve().parents[2] / "README.md"


def markdown_table() -> str:
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for key, type_name, default, description in reference_rows():
        cell = default.replace("|", "\\|")
        lines.append(f"| `{NAMESPACE}:{key}` | {type_name.replace('|', '/')} | `{cell}` | {description} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    table = markdown_table()
    if "--write" not in argv:
        sys.stdout.write(table)
        return 0
    text = README.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{START}\n{table}{END}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
