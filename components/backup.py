"""NotebookBackup component: the restic credentials Secret, the scripts ConfigMap and the two CronJobs.

Manifests come from ``components.core.backup_spec`` (pure); this only registers them. The Secret's values are
Pulumi secrets from stack config and never leave as plain text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.core.backup_spec import LABELS, SECRET_NAME


@dataclass
class NotebookBackupArgs:
    namespace: str
    configmap: dict[str, Any]
    cronjobs: list[dict[str, Any]]
    # key -> secret value (RESTIC_PASSWORD, and the S3 keys for an s3: target)
    secret_data: dict[str, pulumi.Output[str]]
    # the admission policy and binding that keep the Secret out of pods the namespace's accounts make
    guard: list[dict[str, Any]] = field(default_factory=list)


class NotebookBackup(pulumi.ComponentResource):
    cronjob_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NotebookBackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-jupyterhub:backup:NotebookBackup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        guard = self._guard(name, args.guard)
        secret = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata={"name": SECRET_NAME, "namespace": args.namespace, "labels": LABELS},
            type="Opaque",
            string_data=args.secret_data,
            opts=pulumi.ResourceOptions(
                parent=self, additional_secret_outputs=["stringData", "data"], depends_on=guard
            ),
        )
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-scripts", metadata=args.configmap["metadata"], data=args.configmap["data"], opts=child
        )
        jobs = [
            k8s.batch.v1.CronJob(
                f"{name}-{m['metadata']['name']}",
                metadata=m["metadata"],
                spec=m["spec"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[secret, scripts]),
            )
            for m in args.cronjobs
        ]
        self.cronjob_names = pulumi.Output.all(*[j.metadata.name for j in jobs])
        self.register_outputs({"cronjob_names": self.cronjob_names})

    def _guard(self, name: str, objects: list[dict[str, Any]]) -> list[pulumi.Resource]:
        """The policy first, then its binding: the Secret is created only once both hold."""
        made: list[pulumi.Resource] = []
        for obj in objects:
            kind = (
                k8s.admissionregistration.v1.ValidatingAdmissionPolicy
                if obj["kind"] == "ValidatingAdmissionPolicy"
                else k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding
            )
            made.append(
                kind(
                    f"{name}-{obj['kind'][len('ValidatingAdmission'):].lower()}",
                    metadata=obj["metadata"],
                    spec=obj["spec"],
                    opts=pulumi.ResourceOptions(parent=self, depends_on=list(made)),
                )
            )
        return made
