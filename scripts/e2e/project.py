"""The real Pulumi CLI on a copy of this project, with a local file backend and a passphrase.

Used by the e2e tests (tests/e2e) and by scripts/demo.sh. Nothing here imitates the engine: commands run as a
user types them. The copy keeps the checkout's own stack files untouched; its `.venv` links to the checkout's,
so the program runs with the same packages.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cluster
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # components/, when this runs as a script
    sys.path.insert(0, str(ROOT))
from components.core.config import ImagesConfig  # noqa: E402

# the default stack's images (the optional ones on by default: jax and rapids, not rust)
IMAGE_NAMES = tuple(s.name for s in ImagesConfig().specs())
PASSPHRASE = "e2e-passphrase-not-a-secret"
TOOLS = (
    "pulumi",
    "pulumi-language-python",
    "pulumi-language-python-exec",
    "pulumi-resource-kubernetes",
    "kwokctl",
    "kwok",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "components", "images")
# The published z2jh chart beside the checkout (air-gapped, as `chart.path` allows).
CHART_DIR = Path(os.environ.get("GPU_JUPYTERHUB_CHART_DIR", ROOT / ".." / "shared/z2jh/chart/jupyterhub")).resolve()
DIGEST = "sha256:" + "5e" * 32
# every image the default stack config builds (jax and rapids included), as a prebuilt stack gives them
IMAGE_REFS = {name: f"harbor.lab.example/jupyter/{name}@{DIGEST}" for name in IMAGE_NAMES}


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


@dataclass
class PulumiProject:
    """A copy of the project in ``workdir`` and the environment the CLI runs in."""

    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, base: Path) -> PulumiProject:
        project = base / "project"
        project.mkdir(parents=True)
        for name in PROJECT_FILES:
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, project / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, project / name)
        (project / ".venv").symlink_to(ROOT / ".venv")
        (base / "state").mkdir()
        # the Kubernetes provider writes kubeconfig copies (0600, with the cluster's credentials) to TMPDIR and
        # leaves them: here they go with the project's directory (close())
        (base / "tmp").mkdir()
        env = dict(os.environ)
        path = [str(cluster.toolchain_bin()), str(ROOT / ".venv" / "bin"), env.get("PATH", "")]
        env.update(
            {
                "PATH": os.pathsep.join(path),
                "PULUMI_HOME": str(base / "pulumi-home"),
                "PULUMI_BACKEND_URL": f"file://{base / 'state'}",
                "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
                "PULUMI_SKIP_UPDATE_CHECK": "true",
                "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
                "PULUMI_SKIP_CONFIRMATIONS": "true",
                "KUBECONFIG": str(cluster.kubeconfig_path()),
                "KUBECACHEDIR": str(cluster.kube_cache_dir()),
                "TMPDIR": str(base / "tmp"),
                "NO_COLOR": "1",
            }
        )
        env.pop("PULUMI_ACCESS_TOKEN", None)
        return cls(project, env)

    def close(self) -> None:
        """Remove what the engine and its plugins left in the project's TMPDIR (kubeconfig copies)."""
        shutil.rmtree(self.workdir.parent / "tmp", ignore_errors=True)

    def pulumi(self, *args: str, check: bool = True, timeout: float = 900, stdin: str | None = None) -> Result:
        cmd = ["pulumi", *args, "--non-interactive", "--color=never"]
        start = time.monotonic()
        # Own process group: on a timeout the engine's plugins (language host, providers) go too.
        proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(input=stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate()
            raise AssertionError(
                f"`pulumi {' '.join(args)}` did not finish within {timeout:.0f} s:\n{stdout}"
            ) from None
        result = Result(cmd, proc.returncode, stdout, stderr, time.monotonic() - start)
        if check and proc.returncode != 0:
            raise AssertionError(f"`pulumi {' '.join(args)}` failed ({proc.returncode}):\n{result.text}")
        return result

    def stack_file(self, stack: str) -> Path:
        return self.workdir / f"Pulumi.{stack}.yaml"

    def init_stack(self, stack: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        """`pulumi stack init`, plain config written into the stack file, secrets set with the CLI."""
        self.pulumi("stack", "init", stack)
        doc = yaml.safe_load(self.stack_file(stack).read_text()) or {}
        doc["config"] = {f"gpu-jupyterhub:{k}": v for k, v in config.items()}
        self.stack_file(stack).write_text(yaml.safe_dump(doc, sort_keys=True))
        for path, value in secrets.items():
            # on stdin, as the README tells users: a secret never shows in a process list
            self.pulumi("config", "set", "--stack", stack, "--secret", "--path", f"gpu-jupyterhub:{path}", stdin=value)

    def set_config(self, stack: str, key: str, value: Any) -> None:
        doc = yaml.safe_load(self.stack_file(stack).read_text())
        doc["config"][f"gpu-jupyterhub:{key}"] = value
        self.stack_file(stack).write_text(yaml.safe_dump(doc, sort_keys=True))

    def outputs(self, stack: str) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--stack", stack, "--json").stdout)

    def resources(self, stack: str) -> list[dict[str, Any]]:
        state = json.loads(self.pulumi("stack", "export", "--stack", stack).stdout)
        return state["deployment"].get("resources", [])


def example_config(context: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The example stack (Pulumi.dev.yaml) pointed at a simulated cluster: plain config and the secrets to set.

    Changed from the example: the kube context, prebuilt images by digest (no Docker provider), the chart on
    disk. The secrets are the two the example's header asks for, set with `pulumi config set --secret`.
    """
    doc = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]
    config: dict[str, Any] = {k.split(":", 1)[1]: v for k, v in doc.items()}
    config["kubeContext"] = context
    config["images"] = {"build": False, "refs": dict(IMAGE_REFS)}
    config["chart"] = {"path": str(CHART_DIR), "timeoutSeconds": 300}
    secrets = {"registry.password": "e2e-registry-token"}
    if config["auth"]["mode"] == "oidc":
        secrets["auth.oidc.clientSecret"] = "e2e-oidc-client-secret"
    return config, secrets
