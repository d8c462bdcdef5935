"""gpu-jupyterhub: JupyterHub on a small GPU Kubernetes cluster.

Everything is validated (config, nodes) before the first resource is registered, so bad input never
leaves a half-deployed stack. The Helm values come from ``components.core.values.build_values``, the same
function the offline plan command prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.availability import GpuAvailability, GpuAvailabilityArgs
from components.backup import NotebookBackup, NotebookBackupArgs
from components.core.availability_spec import availability_objects
from components.core.backup_spec import (
    ACCESS_KEY,
    PASSWORD_KEY,
    SECRET_KEY,
    backup_cronjobs,
    backup_guard,
    backup_summary,
)
from components.core.backup_spec import check_target as check_backup_target
from components.core.backup_spec import configmap as backup_configmap
from components.core.backup_spec import secret_keys as backup_secret_keys
from components.core.chart import ChartSource, chart_source
from components.core.chart_images import HUB_IMAGE
from components.core.config import ConfigError, StackConfig
from components.core.config_load import namespace_keys, parse_config
from components.core.hub_rbac import hub_role_objects
from components.core.nodes import Inventory
from components.core.profile_options import USER_POD_TOLERATIONS
from components.core.profiles import ProfilePlan, build_profiles
from components.core.storage_guard import keep_volume_settings, storage_problems
from components.core.storage_spec import (
    persistent_volume,
    persistent_volume_claim,
    proof_id,
    shared_code_host,
    shared_code_objects,
    verification_jobs,
)
from components.core.values import (
    ADMIN_PASSWORD_KEY,
    CORE_POD_AFFINITY,
    OAUTH_SECRET_KEY,
    PULL_SECRET,
    SHARED_PASSWORD_KEY,
    auth_notes,
    chart_image_pull_secrets,
    chart_images,
    image_refs_for_plan,
    pod_security_labels,
    registry_notes,
    values_from_plan,
    values_size_warning,
)
from components.hub import JupyterHub, JupyterHubArgs
from components.image_builds import ImageBuilds, ImageBuildsArgs, RegistryPullSecret, RegistryPullSecretArgs
from components.inventory import InventoryError, from_cluster, from_file, storage_objects
from components.prepull import PrePuller, PrePullerArgs
from components.storage import NotebookStorage, NotebookStorageArgs

ROOT = Path(__file__).parent


def stack_config() -> StackConfig:
    """The running stack's config: every key of our namespace (secrets decrypted in memory), checked at once."""
    from pulumi.runtime import config as runtime_config

    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return parse_config(namespace_keys(merged, decode_json=True))


def load() -> tuple[StackConfig, ChartSource, Inventory]:
    """Config, chart and node inventory, or a RunError (no traceback, nothing registered)."""
    try:
        cfg = stack_config()
        if cfg.backup.enabled:
            check_backup_target(cfg)  # never a claim that user pods mount
        chart = chart_source(cfg.chart, ROOT)
    except ConfigError as e:
        raise pulumi.RunError(str(e)) from None
    try:
        if cfg.nodes.file:
            inventory = from_file(cfg.nodes.file, ROOT)
        else:
            kubeconfig = cfg.kubeconfig.get_secret_value() if cfg.kubeconfig else None
            inventory = from_cluster(cfg.kubeContext, kubeconfig)
            # would this config replace the protected notebooks volume, or leave it deletable?
            objects = storage_objects(cfg.kubeContext, kubeconfig)
            cfg, notes = keep_volume_settings(cfg, objects)
            for note in notes:
                pulumi.log.info(note)
            problems = storage_problems(cfg, objects)
            if problems:
                raise pulumi.RunError("the notebooks volume:\n" + "\n".join(f"  - {p}" for p in problems))
    except InventoryError as e:
        raise pulumi.RunError(str(e)) from None
    return cfg, chart, inventory


def auth_secret_data(cfg: StackConfig) -> dict[str, pulumi.Output[str]]:
    data: dict[str, pulumi.Output[str]] = {}
    if cfg.auth.oidc is not None and cfg.auth.mode == "oidc":
        data[OAUTH_SECRET_KEY] = pulumi.Output.secret(cfg.auth.oidc.clientSecret.get_secret_value())
    if cfg.auth.sharedPassword is not None and cfg.auth.mode == "shared-password":
        data[SHARED_PASSWORD_KEY] = pulumi.Output.secret(cfg.auth.sharedPassword.get_secret_value())
    if cfg.auth.adminPassword is not None and cfg.auth.mode in ("native", "shared-password"):
        data[ADMIN_PASSWORD_KEY] = pulumi.Output.secret(cfg.auth.adminPassword.get_secret_value())
    return data


def _checked_values(cfg: StackConfig, plan: ProfilePlan, refs: dict[str, str]) -> dict[str, Any]:
    """The release values; a warning when they come near what the chart's hub Secret can hold."""
    values = values_from_plan(cfg, plan, refs)
    warning = values_size_warning(values)
    if warning:
        pulumi.log.warn(warning)
    return values


def backup_component(cfg: StackConfig, storage: NotebookStorage, opts: pulumi.ResourceOptions) -> NotebookBackup | None:
    """The restic CronJobs, when ``backup.enabled``; their Secret holds Pulumi secrets only."""
    if not cfg.backup.enabled:
        return None
    b = cfg.backup
    values = {PASSWORD_KEY: b.password}
    if b.credentials is not None:
        values |= {ACCESS_KEY: b.credentials.accessKey, SECRET_KEY: b.credentials.secretKey}
    data = {k: pulumi.Output.secret(values[k].get_secret_value()) for k in backup_secret_keys(cfg)}  # type: ignore[union-attr]
    return NotebookBackup(
        "backup",
        NotebookBackupArgs(
            namespace=cfg.namespace,
            configmap=backup_configmap(cfg),
            cronjobs=backup_cronjobs(cfg),
            secret_data=data,
            guard=backup_guard(cfg),
        ),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[storage])),
    )


def _shared_code_objects(cfg: StackConfig, inventory: Inventory) -> list[dict[str, Any]]:
    """storage.sharedCode's local volume and claim, on the node the profile option names (none without one)."""
    host = shared_code_host(inventory) if cfg.storage.sharedCode is not None else None
    return list(shared_code_objects(cfg, host)) if host else []


def main() -> None:
    cfg, chart, inventory = load()
    provider = k8s.Provider(
        "k8s",
        context=cfg.kubeContext,
        kubeconfig=pulumi.Output.secret(cfg.kubeconfig.get_secret_value()) if cfg.kubeconfig else None,
    )
    # Retained: deleting the namespace would delete the notebooks claim with it.
    namespace = k8s.core.v1.Namespace(
        "namespace",
        metadata={
            "name": cfg.namespace,
            "labels": {"app.kubernetes.io/part-of": "gpu-jupyterhub", **pod_security_labels(cfg)},
        },
        opts=pulumi.ResourceOptions(provider=provider, retain_on_delete=True),
    )
    ns_name = namespace.metadata.name
    after_ns = pulumi.ResourceOptions(providers=[provider], depends_on=[namespace])
    push_password = pulumi.Output.secret(cfg.registry.password.get_secret_value() if cfg.registry.password else "")
    for note in registry_notes(cfg) + auth_notes(cfg):
        pulumi.log.warn(note)
    pull = cfg.registry.pull_credentials()
    pull_secret_name = PULL_SECRET if pull else None
    depends_pull: list[pulumi.Resource] = [namespace]
    if pull is not None:
        depends_pull.append(
            RegistryPullSecret(
                "harbor-pull",
                RegistryPullSecretArgs(
                    registry=cfg.registry.host,
                    username=pull[0],
                    password=pulumi.Output.secret(pull[1].get_secret_value()),
                    namespace=ns_name,
                    provider=provider,
                    secret_name=PULL_SECRET,
                ),
                opts=after_ns,
            )
        )
    images = ImageBuilds(
        "images",
        ImageBuildsArgs(
            registry=cfg.registry.host,
            project=cfg.registry.project,
            username=cfg.registry.username or "",
            password=push_password,
            build=cfg.images.build,
            given_refs=dict(cfg.images.refs),
            base_image=cfg.images.baseImage,
            trixie_base_image=cfg.images.trixieBaseImage,
            images_dir=str(ROOT / "images"),
            context_dir=str(ROOT),
            version=cfg.images.version,
            specs=cfg.images.specs(),
        ),
    )
    gpu_tolerations = [dict(t) for t in cfg.profiles.gpuTolerations]
    user_tolerations = [dict(t) for t in USER_POD_TOLERATIONS]
    PrePuller(
        "prepull",
        PrePullerArgs(
            refs=images.ref_outputs,
            gpu_images=images.gpu_images,
            namespace=cfg.namespace,
            provider=provider,
            pull_secret=pull_secret_name,
            gpu_tolerations=gpu_tolerations,
            user_tolerations=user_tolerations,
        ),
        opts=pulumi.ResourceOptions(providers=[provider], depends_on=depends_pull),
    )

    # Names and nodes do not depend on image digests: known in a preview too, unlike the values.
    profile_plan = build_profiles(cfg, inventory, {s.name: "(pending)" for s in cfg.images.specs()})
    writers: list[dict] = []
    readers: list[dict] = []
    if cfg.verifyStorage:
        check_nodes = profile_plan.checked_nodes
        tolerations = user_tolerations + gpu_tolerations
        configured_image = image_refs_for_plan(cfg)["jupyter-ml-cpu"]
        writers, readers = verification_jobs(
            cfg,
            check_nodes,
            run_id=proof_id(cfg, check_nodes, configured_image, tolerations, pull_secret_name),
            image=images.ref_outputs["jupyter-ml-cpu"],
            tolerations=tolerations,
            pull_secret=pull_secret_name,
        )
    storage = NotebookStorage(
        "notebooks",
        NotebookStorageArgs(
            claim=persistent_volume_claim(cfg),
            volume=persistent_volume(cfg) if cfg.storage.mode == "static" else None,
            writer_jobs=writers,
            reader_jobs=readers,
            job_timeout_seconds=cfg.storage.verifyTimeoutSeconds + 600,
            shared_code=_shared_code_objects(cfg, inventory),
        ),
        opts=after_ns,
    )

    backup = backup_component(cfg, storage, after_ns)

    availability: list[pulumi.Resource] = []
    if cfg.profiles.liveAvailability:
        objects = availability_objects(
            cfg.namespace, chart_images(cfg)[HUB_IMAGE], chart_image_pull_secrets(cfg), CORE_POD_AFFINITY
        )
        after_pull = pulumi.ResourceOptions(providers=[provider], depends_on=depends_pull)
        availability.append(GpuAvailability("gpu-availability", GpuAvailabilityArgs(objects=objects), opts=after_pull))

    plan = images.refs.apply(lambda refs: build_profiles(cfg, inventory, refs))
    values = pulumi.Output.all(plan, images.refs).apply(lambda pr: _checked_values(cfg, pr[0], pr[1]))
    hub = JupyterHub(
        "hub",
        JupyterHubArgs(
            namespace=ns_name,
            values=values,
            chart=chart,
            timeout_seconds=cfg.chart.timeoutSeconds,
            host=cfg.hub.host,
            auth_secrets=auth_secret_data(cfg),
            depends_on=availability,
            rbac=hub_role_objects(cfg.namespace),
        ),
        opts=pulumi.ResourceOptions(providers=[provider], depends_on=[*depends_pull, storage]),
    )

    pulumi.export("hub_url", hub.url)
    pulumi.export("profiles", [p["display_name"] for p in profile_plan.profiles])
    pulumi.export("gpu_nodes", profile_plan.gpu_nodes)
    pulumi.export("excluded_nodes", {r.name: r.reason for r in profile_plan.nodes if r.gpus != "-" and not r.included})
    pulumi.export("notes", profile_plan.notes)
    pulumi.export("images", images.refs)
    pulumi.export("notebooks_claim", storage.claim_name)
    if backup is not None:
        pulumi.export("backup", backup_summary(cfg))


main()
