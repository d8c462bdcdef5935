"""Try the program without a cluster: a simulated home lab, the example stack deployed to it by the real Pulumi
engine, the spawn form's choices printed from the stack outputs, and everything torn down again.

Run through scripts/demo.sh (it builds the toolchain first).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cluster
from project import PulumiProject, example_config

NODES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "nodes" / "homelab.json"
STACK = "demo"


def table(outputs: dict) -> str:
    lines = ["Spawn form (from the stack outputs):", ""]
    lines += [f"  ( ) {name}" for name in outputs["profiles"]]
    lines += ["", f"GPU nodes offered: {', '.join(outputs['gpu_nodes']) or 'none'}"]
    for node, reason in sorted(outputs["excluded_nodes"].items()):
        lines.append(f"GPU node left out: {node}: {reason}")
    lines += [f"Note: {n}" for n in outputs.get("notes", [])]
    return "\n".join(lines)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gpu-jupyterhub-demo-") as tmp:
        try:
            print(f"demo: starting a simulated cluster with the nodes of {NODES.name} ...", flush=True)
            context = cluster.up(STACK, [NODES])
            project = PulumiProject.create(Path(tmp))
            config, secrets = example_config(context)
            project.init_stack(STACK, config, secrets)
            print("demo: pulumi up (the example stack, prebuilt images, the chart on disk) ...", flush=True)
            result = project.pulumi("up", "--stack", STACK, "--yes")
            print(result.stdout)
            print(table(project.outputs(STACK)))
            print(f"\ndemo: deployed in {result.seconds:.0f} s; tearing down")
            project.pulumi("destroy", "--stack", STACK, "--yes", "--exclude-protected")
        except (cluster.ClusterError, AssertionError) as e:
            print(f"demo: {e}", file=sys.stderr)
            return 1
        finally:
            cluster.down(STACK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
