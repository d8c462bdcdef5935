"""NotebookStorage component: the notebooks volume and claim, and the optional cross-node proof.

The PV and claim hold every user's notebooks: both are protected (a destroy stops with an error) and
retained on delete (Pulumi forgets them but Kubernetes keeps them), and the PV's reclaim policy is
Retain, so not even a deleted claim deletes data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s


@dataclass
class NotebookStorageArgs:
    """Manifests from ``components.core.storage_spec``; jobs only when verification is on."""

    claim: dict[str, Any]
    volume: dict[str, Any] | None
    writer_jobs: list[dict[str, Any]] = field(default_factory=list)
    reader_jobs: list[dict[str, Any]] = field(default_factory=list)
    job_timeout_seconds: int = 600
    # storage.sharedCode: its local PersistentVolume and claim (storage_spec.shared_code_objects), or none
    shared_code: list[dict[str, Any]] = field(default_factory=list)


class NotebookStorage(pulumi.ComponentResource):
    claim_name: pulumi.Output[str]

    def __init__(self, name: str, args: NotebookStorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("gpu-jupyterhub:storage:NotebookStorage", name, None, opts)
        keep = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        deps: list[pulumi.Resource] = []
        if args.volume is not None:
            pv = k8s.core.v1.PersistentVolume(
                f"{name}-volume", metadata=args.volume["metadata"], spec=args.volume["spec"], opts=keep
            )
            deps.append(pv)
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-claim",
            metadata=args.claim["metadata"],
            spec=args.claim["spec"],
            opts=pulumi.ResourceOptions.merge(keep, pulumi.ResourceOptions(depends_on=deps)),
        )
        self._shared_code(name, args.shared_code)
        writers = [self._job(name, "write", i, m, [claim], args) for i, m in enumerate(args.writer_jobs)]
        for i, m in enumerate(args.reader_jobs):
            self._job(name, "read", i, m, writers or [claim], args)
        self.claim_name = claim.metadata.name
        self.register_outputs({"claim_name": self.claim_name})

    def _shared_code(self, name: str, objects: list[dict[str, Any]]) -> None:
        """The shared code's volume and claim: no user data (the directory stays on its node whatever
        happens to them), replaced together when the path or the node changes."""
        after: list[pulumi.Resource] = []
        for obj in objects:
            cls = (
                k8s.core.v1.PersistentVolume if obj["kind"] == "PersistentVolume" else k8s.core.v1.PersistentVolumeClaim
            )
            suffix = "volume" if obj["kind"] == "PersistentVolume" else "claim"
            opts = pulumi.ResourceOptions(parent=self, depends_on=after, delete_before_replace=True)
            after = [cls(f"{name}-shared-code-{suffix}", metadata=obj["metadata"], spec=obj["spec"], opts=opts)]

    def _job(
        self,
        name: str,
        kind: str,
        index: int,
        manifest: dict[str, Any],
        after: list[pulumi.Resource],
        args: NotebookStorageArgs,
    ) -> k8s.batch.v1.Job:
        metadata = dict(manifest["metadata"])
        metadata["annotations"] = {
            **metadata.get("annotations", {}),
            "pulumi.com/timeoutSeconds": str(args.job_timeout_seconds),
        }
        return k8s.batch.v1.Job(
            f"{name}-{kind}-{index:03d}",
            metadata=metadata,
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=after, delete_before_replace=True),
        )
