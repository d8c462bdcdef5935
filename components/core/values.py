"""Helm values for the Zero to JupyterHub chart: one pure function, used by ``pulumi up`` and the plan.

Values carry references only: a Helm release keeps its values in clear text in the Pulumi state and in
the cluster, so secrets reach the hub as ``secretKeyRef`` to Kubernetes Secrets the program creates.
"""

from __future__ import annotations

from typing import Any

from components import shipped
from components.core.availability_spec import hub_egress_rule, service_url
from components.core.chart_images import chart_image_refs, chart_image_values
from components.core.config import StackConfig
from components.core.egress_spec import user_egress_rules
from components.core.hub_services import gpu_culler_values, gpu_overview_values, merge_hub_extras
from components.core.image_rule import guard_pattern
from components.core.nodes import Inventory
from components.core.profiles import ProfilePlan, build_profiles
from components.core.storage_spec import SERVER_CONFIG_PATH, server_config, singleuser_storage_values, user_environment

AUTH_SECRET = "gpu-jupyterhub-auth"
OAUTH_SECRET_KEY = "oauth-client-secret"
SHARED_PASSWORD_KEY = "shared-password"
ADMIN_PASSWORD_KEY = "admin-password"
GUARD_SOURCE = shipped.path("hub_guard.py")
PULL_SECRET = "harbor-pull"
LIVE_PROFILES_SOURCE = shipped.path("live_profiles.py")
# NativeAuthenticator's throttle for its accounts, the same as hub_guard.py's LoginThrottle for the admin names
# (tests/test_hub_guard.py checks that they agree)
LOGIN_FAILURES, LOGIN_PAUSE_SECONDS = 5, 60
# Where the hub and proxy run: nodes an admin marked for them (z2jh's convention) first, then any node without
# GPUs. GPU machines are the ones switched off or rebooted for driver updates, and their capacity is the users';
# a preference, so a single GPU workstation still runs everything. Replaces the chart's own core affinity
# (matchNodePurpose: ignore), which knows only the first rule.
CORE_POD_AFFINITY: dict[str, Any] = {
    "nodeAffinity": {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 100,
                "preference": {
                    "matchExpressions": [{"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["core"]}]
                },
            },
            {
                "weight": 50,
                "preference": {
                    "matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "NotIn", "values": ["true"]}]
                },
            },
        ]
    }
}


def _secret_env(key: str) -> dict[str, Any]:
    return {"valueFrom": {"secretKeyRef": {"name": AUTH_SECRET, "key": key}}}


def auth_values(cfg: StackConfig) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """(hub.config, hub.extraEnv, extraConfig snippet) for the configured login method."""
    auth = cfg.auth
    common = {"admin_users": sorted(auth.adminUsers), "allowed_users": sorted(auth.allowedUsers)}
    if auth.mode == "oidc":
        oidc = auth.oidc
        assert oidc is not None
        base = f"{oidc.issuer}/protocol/openid-connect"
        return (
            {
                "JupyterHub": {"authenticator_class": "generic-oauth"},
                "GenericOAuthenticator": {
                    **common,
                    "client_id": oidc.clientId,
                    "oauth_callback_url": f"https://{cfg.hub.host}/hub/oauth_callback",
                    "authorize_url": oidc.authorizeUrl or f"{base}/auth",
                    "token_url": oidc.tokenUrl or f"{base}/token",
                    "userdata_url": oidc.userdataUrl or f"{base}/userinfo",
                    "login_service": "single sign-on",
                    "username_claim": oidc.usernameClaim,
                    "scope": list(oidc.scopes),
                    "auth_state_groups_key": f"oauth_user.{oidc.groupsClaim}",
                    "allowed_groups": sorted(oidc.allowedGroups),
                    "admin_groups": sorted(oidc.adminGroups),
                    "manage_groups": True,
                },
            },
            {"OAUTH_CLIENT_SECRET": _secret_env(OAUTH_SECRET_KEY)},
            None,
        )
    if auth.mode == "native":
        # Sign-up needs an admin's approval; with no allowedUsers, any approved account may log in (JupyterHub 5
        # admits nobody by default). The guard (hub_guard.py) keeps the admin names from being claimed.
        native = {
            **common,
            "open_signup": False,
            "minimum_password_length": 10,
            "allow_all": not auth.allowedUsers,
            # the other accounts' throttling, as hub_guard.LoginThrottle does for the admin names
            "allowed_failed_logins": LOGIN_FAILURES,
            "seconds_before_next_try": LOGIN_PAUSE_SECONDS,
        }
        snippet = (
            "from nativeauthenticator import NativeAuthenticator\n"
            "c.JupyterHub.authenticator_class = make_guarded_native_authenticator(NativeAuthenticator)\n"
        )
        return (
            {"NativeAuthenticator": native},
            {"GPU_JUPYTERHUB_ADMIN_PASSWORD": _secret_env(ADMIN_PASSWORD_KEY)},
            snippet,
        )
    # the guard (hub_guard.py) compares names after the hub's normalization: "Admin" is the admin's name too
    snippet = (
        "import os\n"
        "from jupyterhub.authenticators.shared import SharedPasswordAuthenticator\n"
        "c.JupyterHub.authenticator_class = make_guarded_shared_password_authenticator(SharedPasswordAuthenticator)\n"
        "c.SharedPasswordAuthenticator.user_password = os.environ['GPU_JUPYTERHUB_SHARED_PASSWORD']\n"
    )
    env = {"GPU_JUPYTERHUB_SHARED_PASSWORD": _secret_env(SHARED_PASSWORD_KEY)}
    if auth.adminUsers:
        snippet += "c.SharedPasswordAuthenticator.admin_password = os.environ['GPU_JUPYTERHUB_ADMIN_PASSWORD']\n"
        env["GPU_JUPYTERHUB_ADMIN_PASSWORD"] = _secret_env(ADMIN_PASSWORD_KEY)
    return ({"SharedPasswordAuthenticator": common}, env, snippet)


def guard_config(cfg: StackConfig, plan: ProfilePlan, refs: dict[str, str]) -> str:
    """hub.extraConfig text: the guards of hub_guard.py, the spawner class with the image rule."""
    pinned = sorted(set(refs.values()) | _profile_images(plan.profiles))
    pattern = guard_pattern(cfg.registry.host, cfg.registry.project)
    where = f"{cfg.registry.host}/{cfg.registry.project}/<name>:<tag> or @sha256:<digest>"
    pinned_lines = "".join(f"        {ref!r},\n" for ref in pinned)
    return (
        f"{GUARD_SOURCE.read_text()}\n\n"
        "from kubespawner import KubeSpawner\n"
        f"c.JupyterHub.spawner_class = make_guarded_spawner(\n"
        f"    KubeSpawner,\n"
        f"    (\n{pinned_lines}    ),\n"
        f"{_py_string(pattern, 4)},\n"
        f"    {where!r},\n"
        f"    {gpu_quota(cfg)!r},\n"
        ")\n"
    )


def _py_string(text: str, indent: int, width: int = 80) -> str:
    """``text`` as a Python expression of adjacent literals, ``width`` characters of it per line, so the hub's
    config shows no line past 120 columns in the values."""
    pad = " " * indent
    parts = [text[i : i + width] for i in range(0, len(text), width)] or [""]
    if len(parts) == 1:
        return f"{pad}{parts[0]!r}"
    return f"{pad}(\n" + "".join(f"{pad}    {p!r}\n" for p in parts) + f"{pad})"


def gpu_quota(cfg: StackConfig) -> dict[str, Any]:
    """The per-user GPU quota as the hub-side guard reads it (see hub_guard.gpu_limit)."""
    p = cfg.profiles
    return {"default": p.maxGpusPerUser, "groups": dict(sorted(p.gpuQuota.items())), "admin": p.adminMaxGpus}


def _profile_images(profiles: list[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for p in profiles:
        overrides = [p.get("kubespawner_override", {})]
        for option in p.get("profile_options", {}).values():
            overrides += [c.get("kubespawner_override", {}) for c in option.get("choices", {}).values()]
        found |= {ov["image"] for ov in overrides if isinstance(ov.get("image"), str)}
    return found


def live_profiles_config(cfg: StackConfig) -> str | None:
    """hub.extraConfig text that makes the profile list a spawn-time callable (see live_profiles.py)."""
    if not (cfg.profiles.liveAvailability or cfg.profiles.gpuGroups):
        return None
    source = LIVE_PROFILES_SOURCE.read_text()
    settings = {
        "live_availability": cfg.profiles.liveAvailability,
        "gpu_groups": sorted(cfg.profiles.gpuGroups),
        "source": service_url(cfg.namespace) if cfg.profiles.liveAvailability else None,
    }
    arguments = "".join(f"    {key}={value!r},\n" for key, value in settings.items())
    call = f"c.KubeSpawner.profile_list = make_profile_list(\n    list(c.KubeSpawner.profile_list),\n{arguments})\n"
    return f"{source}\n\n{call}"


def image_refs_for_plan(cfg: StackConfig) -> dict[str, str]:
    """References the plan shows before a build: the given digests, or tag references to be pinned."""
    if not cfg.images.build:
        return dict(cfg.images.refs)
    names = [s.name for s in cfg.images.specs()]
    return {n: f"{cfg.registry.host}/{cfg.registry.project}/{n}:{cfg.images.version}" for n in names}


def build_values(cfg: StackConfig, inventory: Inventory, refs: dict[str, str]) -> dict[str, Any]:
    """The chart values for this config, these nodes and these image references."""
    return values_from_plan(cfg, build_profiles(cfg, inventory, refs), refs)


def values_from_plan(cfg: StackConfig, plan: ProfilePlan, refs: dict[str, str]) -> dict[str, Any]:
    """The chart values from a computed profile plan: the hub, proxy, ingress and user pods, and the chart's
    own images from where the stack takes them."""
    hub_extra: dict[str, Any] = merge_hub_extras(gpu_culler_values(cfg, plan), gpu_overview_values(cfg))
    proxy_egress = hub_extra.pop("proxy_egress", [])
    # Chart images from the user's registry pull with the user pods' secret: the chart's top-level
    # imagePullSecrets reaches every pod it renders, and its hub config hands the same list to KubeSpawner for
    # user pods, joined to singleuser.image.pullSecrets without removing duplicates; so the secret is named once.
    chart_pull_secrets = chart_image_pull_secrets(cfg)
    values: dict[str, Any] = {
        "hub": _hub(cfg, plan, refs, hub_extra),
        "proxy": {
            "service": {"type": "ClusterIP"},
            "chp": {"extraPodSpec": {"affinity": CORE_POD_AFFINITY}, "networkPolicy": {"egress": proxy_egress}},
        },
        "ingress": _ingress(cfg),
        "singleuser": _singleuser(cfg, plan, refs, [] if chart_pull_secrets else pull_secrets(cfg)),
        # the hub's Role comes from components/core/hub_rbac.py (no Secrets); nothing else of the chart needs RBAC here
        "rbac": {"create": False},
        "prePuller": {
            "hook": {"enabled": False},
            "continuous": {"enabled": False},
            "pullProfileListImages": False,
        },
        # no placeholder pods or custom scheduler: a small cluster, and no extra images to mirror
        "scheduling": {
            "userScheduler": {"enabled": False},
            "userPlaceholder": {"enabled": False},
            "corePods": {"nodeAffinity": {"matchNodePurpose": "ignore"}},
        },
        "cull": {
            "enabled": cfg.culling.enabled,
            "timeout": cfg.culling.timeoutSeconds,
            "every": cfg.culling.everySeconds,
            "maxAge": cfg.culling.maxAgeSeconds,
        },
    }
    if chart_pull_secrets:
        values["imagePullSecrets"] = chart_pull_secrets
    return _merged(values, chart_image_values(chart_images(cfg)))


def _hub(cfg: StackConfig, plan: ProfilePlan, refs: dict[str, str], services: dict[str, Any]) -> dict[str, Any]:
    """hub.*: login, the guards and live profiles as extraConfig, the hub services, placement, the kept
    database and the hub's network rules."""
    hub_config, hub_env, auth_snippet = auth_values(cfg)
    # User pods meet Pod Security "restricted": non-root, no capabilities, the runtime's seccomp profile
    # (KubeSpawner merges these with uid, fsGroup and allowPrivilegeEscalation from singleuser.*).
    hub_config = {
        **hub_config,
        "KubeSpawner": {
            "container_security_context": {
                "runAsNonRoot": True,
                "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "pod_security_context": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        },
    }
    extra_config: dict[str, str] = {"05-guards": guard_config(cfg, plan, refs)}
    if auth_snippet:
        extra_config["10-auth"] = auth_snippet
    live = live_profiles_config(cfg)
    if live:
        extra_config["20-live-profiles"] = live
    hub_ingress = services.pop("networkPolicy", {}).get("ingress", [])
    return {
        **services,
        "config": hub_config,
        "extraEnv": hub_env,
        "extraConfig": extra_config,
        "extraPodSpec": {"affinity": CORE_POD_AFFINITY},
        "allowNamedServers": cfg.hub.allowNamedServers,
        "namedServerLimitPerUser": cfg.hub.namedServerLimitPerUser,
        "concurrentSpawnLimit": cfg.hub.concurrentSpawnLimit,
        # The hub database (native accounts, server state) outlives `pulumi destroy` and a release
        # deletion: Helm leaves a resource with this policy in place.
        "db": {"pvc": {"annotations": {"helm.sh/resource-policy": "keep"}}},
        "networkPolicy": {
            "enabled": True,
            "egressAllowRules": {"privateIPs": cfg.network.hubPrivateEgress},
            "egress": [hub_egress_rule()] if cfg.profiles.liveAvailability else [],
            "ingress": hub_ingress,
        },
    }


def _ingress(cfg: StackConfig) -> dict[str, Any]:
    tls: dict[str, Any] = {"hosts": [cfg.hub.host], "secretName": cfg.hub.tls.secretName or "jupyterhub-tls"}
    annotations: dict[str, str] = {}
    if cfg.hub.tls.clusterIssuer:
        annotations["cert-manager.io/cluster-issuer"] = cfg.hub.tls.clusterIssuer
    ingress: dict[str, Any] = {"enabled": True, "hosts": [cfg.hub.host], "tls": [tls], "annotations": annotations}
    if cfg.hub.ingressClassName:
        ingress["ingressClassName"] = cfg.hub.ingressClassName
    return ingress


def _singleuser(cfg: StackConfig, plan: ProfilePlan, refs: dict[str, str], secrets: list[str]) -> dict[str, Any]:
    """singleuser.*: the profiles, the default image and resources, storage, and the user pods' egress."""
    cpu = cfg.profiles.cpu
    return {
        "image": {"name": refs["jupyter-ml-cpu"], "tag": "", "pullSecrets": secrets},
        "profileList": plan.profiles,
        "uid": 1000,
        "fsGid": 100,
        "allowPrivilegeEscalation": False,
        # The chart's iptables block needs a root init container with NET_ADMIN, which Pod Security
        # "restricted" refuses; the NetworkPolicy below blocks all of link-local (the metadata address too).
        "cloudMetadata": {"blockWithIptables": False},
        "cpu": {"guarantee": cpu.cpuGuarantee, "limit": cpu.cpuLimit},
        "memory": {"guarantee": cpu.memGuarantee, "limit": cpu.memLimit},
        "defaultUrl": "/lab/tree/notebooks",
        "startTimeout": 600,
        "extraEnv": user_environment(),
        "extraFiles": {"jupyter-server-local-state": {"mountPath": SERVER_CONFIG_PATH, "data": server_config()}},
        "storage": singleuser_storage_values(cfg),
        "networkPolicy": {
            "enabled": True,
            # the chart's rules left CGNAT, link-local and public node addresses open, and DNS to every
            # private address: only DNS to kube-system stays, egress_spec's rule does the rest
            "egressAllowRules": {
                "cloudMetadataServer": False,
                "dnsPortsCloudMetadataServer": False,
                "dnsPortsKubeSystemNamespace": True,
                "dnsPortsPrivateIPs": False,
                "nonPrivateIPs": False,
                "privateIPs": False,
            },
            "egress": user_egress_rules(plan.node_addresses, cfg.network.userEgressCidrs),
        },
    }


def chart_images(cfg: StackConfig) -> dict[str, str]:
    """The chart's own images as the release pulls them (values path -> reference): what the values set
    and what the plan prints. The chart's defaults unless ``chart.images`` says otherwise."""
    images = cfg.chart.images
    return chart_image_refs(images.registry, images.hub, images.proxy)


def chart_image_pull_secrets(cfg: StackConfig) -> list[str]:
    """The pull secrets of the chart's pods (and of the availability service, on the hub image): the user pods'
    secret when some chart image comes from the user's registry, else none."""
    return pull_secrets(cfg) if chart_image_values(chart_images(cfg)) else []


def _merged(values: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``extra`` merged in, mappings recursively (``extra`` wins on anything else)."""
    out = dict(values)
    for key, value in extra.items():
        current = out.get(key)
        out[key] = _merged(current, value) if isinstance(current, dict) and isinstance(value, dict) else value
    return out


# The chart stores all values, as YAML and with its defaults, in the hub's Secret; Kubernetes caps a
# Secret at 1 MiB, and an update whose values do not fit fails half-way. Warn well before that.
SECRET_LIMIT_BYTES = 1024 * 1024
VALUES_WARN_BYTES = 700 * 1024


def values_size_warning(values: dict[str, Any]) -> str | None:
    """A warning naming the limit when the values (as YAML) come near what the hub Secret can hold."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    size = len(yaml.dump(values, Dumper=dumper, sort_keys=True, default_flow_style=False).encode())
    if size < VALUES_WARN_BYTES:
        return None
    return (
        f"the Helm values are {size // 1024} KiB as YAML; the chart stores them with its defaults in the hub "
        f"Secret, which Kubernetes limits to {SECRET_LIMIT_BYTES // 1024} KiB: beyond that `pulumi up` fails. "
        "Fewer GPU classes or nodes, or a shorter hub.extraConfig, bring them down"
    )


def pull_secrets(cfg: StackConfig) -> list[str]:
    """The imagePullSecrets of user pods, pre-pullers and checks: none without registry credentials
    (a public Harbor project, or credentials the nodes' container runtime holds)."""
    return [PULL_SECRET] if cfg.registry.pull_credentials() else []


def auth_notes(cfg: StackConfig) -> list[str]:
    """What the plan and `pulumi up` say about the login: shared-password does not tell users apart."""
    auth = cfg.auth
    if auth.mode != "shared-password" or len(auth.allowedUsers) < 2:
        return []
    names = ", ".join(sorted(auth.allowedUsers)[:5]) + (", ..." if len(auth.allowedUsers) > 5 else "")
    return [
        f"auth.mode shared-password with {len(auth.allowedUsers)} allowedUsers ({names}): the password does not "
        "tell users apart, so anyone who has it can log in under any of these names and open that user's servers "
        "and notebooks; use native or oidc to keep users from each other (admin names need auth.adminPassword)"
    ]


def registry_notes(cfg: StackConfig) -> list[str]:
    """What the plan and `pulumi up` say about the credentials pods pull with."""
    if cfg.registry.pullUsername:
        return _chart_image_notes(cfg)
    if cfg.registry.username:
        return [
            "registry.pullUsername/pullPassword are not set: user pods pull with the push robot account, whose "
            "token then sits in the user namespace; create a pull-only robot account in Harbor",
            *_chart_image_notes(cfg),
        ]
    return ["no registry credentials: images must be pullable without them (a public project, or node credentials)"]


def _chart_image_notes(cfg: StackConfig) -> list[str]:
    """A note when chart images come from a registry the pull secret (for registry.host only) does not cover."""
    defaults = chart_image_refs(None, None, None)
    hosts = sorted({ref.split("/", 1)[0] for path, ref in chart_images(cfg).items() if ref != defaults[path]})
    others = [h for h in hosts if h != cfg.registry.host]
    if not others:
        return []
    return [
        f"chart.images: the pull secret holds credentials for registry.host ({cfg.registry.host}) only, so the "
        f"chart's images on {' and '.join(others)} must pull without them"
    ]


def pod_security_labels(cfg: StackConfig) -> dict[str, str]:
    """Pod Security Admission labels of the namespace: enforce, warn and audit "restricted" (every pod the
    program and the chart create meets it; shared code comes through a claim, not a hostPath)."""
    labels = {}
    for mode in ("enforce", "warn", "audit"):
        labels[f"pod-security.kubernetes.io/{mode}"] = "restricted"
        labels[f"pod-security.kubernetes.io/{mode}-version"] = "latest"
    return labels
