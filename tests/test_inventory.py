"""The live node lookup: kubectl as a subprocess, with the kubeconfig secret in a private temporary file."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from components.inventory import InventoryError, from_cluster
from tests.conftest import nodes_json

KUBECONFIG = "apiVersion: v1\nkind: Config\n# secret-kubeconfig-content-3c1f\n"


def fake_kubectl(bin_dir: Path, log: Path, *, stdout: str = "", stderr: str = "", code: int = 0) -> None:
    """A kubectl that records its arguments and, for --kubeconfig, the file's mode and content at call time."""
    script = bin_dir / "kubectl"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, stat, sys\n"
        "seen = {}\n"
        "for a in sys.argv[1:]:\n"
        "    if a.startswith('--kubeconfig='):\n"
        "        p = a.split('=', 1)[1]\n"
        "        seen = {'path': p, 'mode': stat.S_IMODE(os.stat(p).st_mode), 'content': open(p).read()}\n"
        f"open({str(log)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], 'kubeconfig': seen}}) + '\\n')\n"
        f"sys.stdout.write({stdout!r}); sys.stderr.write({stderr!r}); sys.exit({code})\n"
    )
    script.chmod(0o755)


@pytest.fixture
def kubectl_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    return d


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_context_and_kubeconfig_secret_reach_kubectl_and_the_file_is_removed(kubectl_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    fake_kubectl(kubectl_dir, log, stdout=nodes_json("mixed"))
    inventory = from_cluster("homelab", KUBECONFIG)
    assert [n.name for n in inventory.nodes][:2] == ["cp-1", "cpu-1"]
    (call,) = calls(log)
    path = call["kubeconfig"]["path"]
    assert call["argv"] == [
        "get",
        "nodes",
        "-o",
        "json",
        "--request-timeout=30s",
        "--context=homelab",
        f"--kubeconfig={path}",
    ]
    assert call["kubeconfig"]["mode"] == stat.S_IRUSR | stat.S_IWUSR
    assert call["kubeconfig"]["content"] == KUBECONFIG
    assert not Path(path).exists(), "the kubeconfig copy is removed right after the call"


def test_without_a_kubeconfig_secret_kubectl_uses_its_own(kubectl_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    fake_kubectl(kubectl_dir, log, stdout=nodes_json("nogpu"))
    from_cluster("lab", None)
    (call,) = calls(log)
    assert call["argv"][-1] == "--context=lab"
    assert call["kubeconfig"] == {}


def test_a_failing_kubectl_names_the_context_and_never_the_secret_file(kubectl_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    fake_kubectl(kubectl_dir, log, stderr='error: context "lab" does not exist', code=1)
    with pytest.raises(InventoryError, match=r"kube context 'lab'.*context \"lab\" does not exist") as err:
        from_cluster("lab", KUBECONFIG)
    assert "secret-kubeconfig-content" not in str(err.value)
    assert not Path(calls(log)[0]["kubeconfig"]["path"]).exists()
    assert "nodes.file" in str(err.value), "the message says how to go on without the cluster"


def test_garbage_output_and_missing_kubectl_are_clear_errors(
    kubectl_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_kubectl(kubectl_dir, tmp_path / "log", stdout="<html>proxy login</html>")
    with pytest.raises(InventoryError, match="kube context 'lab': kubectl output is not a node list"):
        from_cluster("lab", None)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(InventoryError, match="kubectl is not on PATH"):
        from_cluster("lab", None)
