"""Try the program without a cluster: a simulated home lab, the example stack deployed to it by the real Pulumi
engine, the deployed spawn form printed with every choice and the GPUs free now, and everything torn down again.

Run through scripts/demo.sh (it builds the toolchain first).
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path

import cluster
import yaml
from project import PulumiProject, example_config

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from components import shipped
from components.cli.plan import render_form
from components.core.config import StackConfig

NODES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "nodes" / "homelab.json"
STACK = "demo"


def deployed_form(context: str) -> str:
    """The spawn form as a user would get it now: the profile list the hub was deployed with (the chart keeps the
    values in the hub's Secret), with the free/total GPUs the hub computes from the cluster's nodes and pods."""
    name = context.removeprefix("kwok-")
    namespace = StackConfig.model_fields["namespace"].default  # the example stack keeps the default
    secret = json.loads(cluster.kubectl(name, "-n", namespace, "get", "secret", "hub", "-o", "json").stdout)
    values = yaml.safe_load(base64.b64decode(secret["data"]["values.yaml"]))
    nodes = json.loads(cluster.kubectl(name, "get", "nodes", "-o", "json").stdout)["items"]
    pods = json.loads(cluster.kubectl(name, "get", "pods", "-A", "-o", "json").stdout)["items"]
    live = shipped.load("live_profiles")
    profiles = live.apply_availability(values["singleuser"]["profileList"], live.gpu_usage(nodes, pods), [], [])
    return render_form(profiles)


def table(outputs: dict, form: str) -> str:
    lines = ["Spawn form (deployed, with the GPUs free now; * marks the defaults):", "", form]
    lines += [f"GPU nodes offered: {', '.join(outputs['gpu_nodes']) or 'none'}"]
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
            print(table(project.outputs(STACK), deployed_form(context)))
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
