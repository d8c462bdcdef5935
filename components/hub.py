"""The JupyterHub component: auth secrets and the z2jh Helm release.

The hub holds no cluster-wide right: spawn-time GPU availability comes from the availability service
(components/availability.py), which alone lists and watches every node and pod. In its namespace it holds the
Role of components/core/hub_rbac.py (no Secrets) instead of the chart's.

`helm.v3.Release` (not `helm.v4.Chart`) because the chart relies on Helm hooks and release history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.core.chart import ChartSource
from components.core.values import AUTH_SECRET

RELEASE_NAME = "jupyterhub"


@dataclass
class JupyterHubArgs:
    """What the hub needs; values are the output of ``components.core.values.build_values``."""

    namespace: pulumi.Input[str]
    values: pulumi.Input[dict[str, Any]]
    chart: ChartSource
    timeout_seconds: int
    host: str
    auth_secrets: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    # what must exist before the release (the availability service the hub polls)
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    # the hub's Role and RoleBinding (components.core.hub_rbac), in place of the chart's
    rbac: list[dict[str, Any]] = field(default_factory=list)


class JupyterHub(pulumi.ComponentResource):
    url: pulumi.Output[str]
    release_status: pulumi.Output[str]

    def __init__(self, name: str, args: JupyterHubArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-jupyterhub:hub:JupyterHub", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        depends: list[pulumi.Resource] = list(args.depends_on)
        for obj in args.rbac:
            if obj["kind"] == "Role":
                access: pulumi.Resource = k8s.rbac.v1.Role(
                    f"{name}-role", metadata=obj["metadata"], rules=obj["rules"], opts=child
                )
            else:
                access = k8s.rbac.v1.RoleBinding(
                    f"{name}-rolebinding",
                    metadata=obj["metadata"],
                    subjects=obj["subjects"],
                    role_ref=obj["roleRef"],
                    opts=child,
                )
            depends.append(access)
        if args.auth_secrets:
            secret = k8s.core.v1.Secret(
                f"{name}-auth",
                metadata={"name": AUTH_SECRET, "namespace": args.namespace},
                type="Opaque",
                string_data={k: pulumi.Output.secret(v) for k, v in sorted(args.auth_secrets.items())},
                opts=child,
            )
            depends.append(secret)
        repo = args.chart.repository
        release = k8s.helm.v3.Release(
            f"{name}-release",
            name=RELEASE_NAME,
            chart=args.chart.chart,
            version=args.chart.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=repo) if repo else None,
            namespace=args.namespace,
            values=args.values,
            timeout=args.timeout_seconds,
            atomic=False,
            cleanup_on_fail=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=depends),
        )
        self.url = pulumi.Output.from_input(f"https://{args.host}/")
        self.release_status = release.status.apply(lambda s: s.status if s else "unknown")
        self.register_outputs({"url": self.url, "release_status": self.release_status})
