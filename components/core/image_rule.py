"""The one rule for an image a user may type: ``<registry>/<project>/<name>[/<name>...]`` with a tag or a
digest, from our Harbor project only (never Docker Hub or another project).

One grammar, written twice only in how the registry and project are quoted: the spawn form's pattern must
also work as a browser form pattern (which refuses needless escapes such as ``\\-``), while the hub-side
guard (shipped/hub_guard.py) matches the final image whole with Python's ``re``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# One path component of a repository (the OCI distribution spec's grammar).
REPO_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# A tag (the distribution spec's grammar) or a lower-case sha256 digest.
TAG_OR_DIGEST = r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})"


def literal(text: str) -> str:
    """``text`` as a regex literal that also works as a browser form pattern (which rejects needless
    escapes such as ``\\-``): "." in a class; anything beyond host-name characters escaped."""
    if re.fullmatch(r"[A-Za-z0-9.:-]+", text):
        return text.replace(".", "[.]")
    return re.escape(text)


def _rule(registry: str, project: str, quote: Callable[[str], str]) -> str:
    return f"{quote(registry)}/{quote(project)}/{REPO_COMPONENT}(?:/{REPO_COMPONENT})*{TAG_OR_DIGEST}"


def form_regex(registry: str, project: str) -> str:
    """The spawn form's ``validation_regex``. The end is ``(?![\\s\\S])``, not ``$``: KubeSpawner checks with
    ``re.match``, where ``$`` admits a trailing newline; the hub-side guard checks the final image again."""
    return f"^{_rule(registry, project, literal)}" + r"(?![\s\S])"


def guard_pattern(registry: str, project: str) -> str:
    """The hub-side guard's pattern, which it matches whole (``re.fullmatch``)."""
    return _rule(registry, project, re.escape)
