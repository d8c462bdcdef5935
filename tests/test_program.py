"""The whole program under Pulumi's mocks, in update and in preview mode."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.rpc import UNKNOWN

from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.values import build_values
from tests.conftest import GIVEN_REFS, SECRETS, nodes_json, plan_values
from tests.k8s import manifest_from_inputs, validate
from tests.program import FAKE_DIGEST, SECRET_SIG, Run, plain_strings, run_program

SECRET_KEYS = ("auth", "registry")


def run(config: dict[str, Any], preview: bool = False, scenario: str = "mixed", **kw: Any) -> Run:
    return run_program(config, preview=preview, nodes_json=nodes_json(scenario), secret_keys=SECRET_KEYS, **kw)


@pytest.mark.parametrize("preview", [False, True], ids=["update", "preview"])
def test_resources_and_key_inputs(base_config: dict[str, Any], preview: bool) -> None:
    r = run(base_config, preview=preview)
    types = sorted(x.type for x in r.resources)
    expected = {
        "pulumi:providers:kubernetes": 1,
        "kubernetes:core/v1:Namespace": 1,
        "kubernetes:core/v1:Secret": 2,
        "kubernetes:core/v1:PersistentVolume": 1,
        "kubernetes:core/v1:PersistentVolumeClaim": 1,
        "kubernetes:apps/v1:DaemonSet": 2,
        "kubernetes:apps/v1:Deployment": 1,
        "kubernetes:core/v1:ServiceAccount": 1,
        "kubernetes:core/v1:Service": 1,
        "kubernetes:networking.k8s.io/v1:NetworkPolicy": 1,
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole": 1,
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": 1,
        "kubernetes:helm.sh/v3:Release": 1,
        # six images, and the stack stages of the two that others are built FROM
        "docker:index/image:Image": 8,
        "kubernetes:batch/v1:Job": 0,
    }
    for typ, n in expected.items():
        assert types.count(typ) == n, typ
    # one explicit provider from stack config, used by every Kubernetes resource
    provider = r.one("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "homelab"
    for res in r.resources:
        if res.type.startswith("kubernetes:"):
            assert res.provider.split("::")[-2:] == ["k8s", "k8s-id"], (res.name, res.provider)
    # components: every child under a component of ours
    for res in r.resources:
        if res.type.startswith(("kubernetes:", "docker:")) and res.type != "kubernetes:core/v1:Namespace":
            assert "gpu-jupyterhub:" in res.parent, res.name
    release = r.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "jupyterhub"
    assert release.inputs["version"] == "4.4.0"
    assert release.inputs["repositoryOpts"]["repo"] == "https://hub.jupyter.org/helm-chart/"
    assert release.inputs["namespace"] == "jupyterhub"
    assert release.inputs["name"] == "jupyterhub"
    if preview:
        assert release.inputs["values"] == UNKNOWN, "digests are unknown in a preview, so are the values"
    else:
        values = release.inputs["values"]
        assert values["singleuser"]["image"]["name"].endswith(FAKE_DIGEST)
        assert r.outputs["hub_url"] == "https://jupyter.lab.example/"
        assert r.outputs["gpu_nodes"] == ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
        assert "GPU Environment (auto-select)" in r.outputs["profiles"]
        assert all(ref.endswith(FAKE_DIGEST) for ref in r.outputs["images"].values())
    ns = r.one("kubernetes:core/v1:Namespace")
    assert ns.retain_on_delete
    # live node lookup against the provider's context
    assert r.kubectl == [
        ["get", "nodes", "-o", "json", "--request-timeout=30s", "--context=homelab"],
        ["get", "persistentvolumes,storageclasses", "-o", "json", "--request-timeout=30s", "--context=homelab"],
    ]
    assert r.calls == [], "no invoke: kubectl runs in the program, no extra plugin"


def test_release_values_equal_the_plan_command(prebuilt_config: dict[str, Any], tmp_path: Path) -> None:
    r = run(prebuilt_config)
    release_values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    stack_file = tmp_path / "Pulumi.test.yaml"
    config = {f"gpu-jupyterhub:{k}": v for k, v in copy.deepcopy(prebuilt_config).items()}
    config["gpu-jupyterhub:auth"]["oidc"]["clientSecret"] = {"secure": "v1:abc"}
    config["gpu-jupyterhub:registry"]["password"] = {"secure": "v1:def"}
    stack_file.write_text(yaml.safe_dump({"config": config}))
    nodes = tmp_path / "nodes.json"
    nodes.write_text(nodes_json("mixed"))
    assert plan_values(stack_file, nodes) == release_values
    # and byte-identical to the pure function's rendering
    cfg = parse_config(prebuilt_config)
    direct = build_values(cfg, parse_nodes(nodes_json("mixed")), GIVEN_REFS)
    assert direct == release_values


def test_built_images_reach_the_profiles(base_config: dict[str, Any]) -> None:
    r = run(base_config)
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    text = json.dumps(values["singleuser"]["profileList"])
    for name in GIVEN_REFS:
        assert f"harbor.lab.example/jupyter/{name}@{FAKE_DIGEST}" in text
    assert ":latest" not in json.dumps(values)


@pytest.mark.parametrize("mode", ["oidc", "shared-password"])
def test_no_secret_in_clear(base_config: dict[str, Any], mode: str) -> None:
    cfg = copy.deepcopy(base_config)
    if mode == "shared-password":
        cfg["auth"] = {"mode": "shared-password", "sharedPassword": SECRETS["shared"], "allowedUsers": ["ann"]}
    r = run(cfg)
    for res in r.resources:
        for s in plain_strings(res.raw):
            for secret in SECRETS.values():
                assert secret not in s, f"{secret} in clear in {res.type} {res.name}"
    assert not any(secret in json.dumps(r.outputs) for secret in SECRETS.values())
    auth = r.by_name("hub-auth")
    key = "oauth-client-secret" if mode == "oidc" else "shared-password"
    assert auth.inputs["stringData"][key] in SECRETS.values()
    assert SECRET_SIG in json.dumps(auth.raw["stringData"]), "secret value travels as a Pulumi secret"
    pull = r.by_name("harbor-pull-secret")
    assert pull.inputs["type"] == "kubernetes.io/dockerconfigjson"
    assert SECRET_SIG in json.dumps(pull.raw["stringData"])
    env = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]["hub"]["extraEnv"]
    assert all("secretKeyRef" in v["valueFrom"] for v in env.values())


def test_every_kubernetes_object_validates_strictly(base_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(base_config)
    cfg["verifyStorage"] = True
    r = run(cfg)
    checked = 0
    for res in r.resources:
        if res.type.startswith("kubernetes:") and "helm.sh" not in res.type:
            validate(manifest_from_inputs(res.type, res.inputs))
            checked += 1
    assert checked >= 10


def test_bad_config_registers_nothing(base_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(base_config)
    cfg["hub"]["hots"] = "x"
    cfg["namespace"] = ["not", "a", "string"]
    del cfg["registry"]["username"]
    record = Run()
    with pytest.raises(pulumi.RunError) as err:
        run(cfg, record=record)
    text = str(err.value)
    for key in ("gpu-jupyterhub:hub.hots", "gpu-jupyterhub:namespace", "gpu-jupyterhub:registry.username"):
        assert key in text
    assert "Traceback" not in text
    assert [r.type for r in record.resources] == ["pulumi:pulumi:Stack"], "nothing half-deployed"
    assert record.kubectl == [], "not even the node lookup ran"


def test_unreachable_cluster_is_a_clear_error(base_config: dict[str, Any]) -> None:
    record = Run()
    with pytest.raises(pulumi.RunError, match=r"kube context 'homelab'.*was refused"):
        run_program(
            base_config,
            nodes_json=None,
            fail_kubectl="The connection to the server 127.0.0.1:6443 was refused",
            secret_keys=SECRET_KEYS,
            record=record,
        )
    assert [r.type for r in record.resources] == ["pulumi:pulumi:Stack"], "nothing half-deployed"
    with pytest.raises(pulumi.RunError, match="not a node list"):
        run_program(base_config, nodes_json="{not json", secret_keys=SECRET_KEYS)


def test_offline_node_file_skips_kubectl(base_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(base_config)
    cfg["nodes"] = {"file": "tests/fixtures/nodes/tainted.json"}
    r = run_program(cfg, nodes_json=None, secret_keys=SECRET_KEYS)
    assert r.kubectl == []
    assert r.outputs["gpu_nodes"] == ["gpu-tainted"]
    assert "gpu-reserved" in r.outputs["excluded_nodes"]
    cfg["nodes"] = {"file": "tests/fixtures/nodes/missing.json"}
    with pytest.raises(pulumi.RunError, match=r"gpu-jupyterhub:nodes\.file"):
        run_program(cfg, nodes_json=None, secret_keys=SECRET_KEYS)


def test_oci_chart_source(prebuilt_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(prebuilt_config)
    cfg["chart"] = {"oci": "oci://harbor.lab.example/charts/jupyterhub", "version": "4.4.0"}
    release = run(cfg).one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == "oci://harbor.lab.example/charts/jupyterhub"
    assert "repositoryOpts" not in release.inputs or not release.inputs["repositoryOpts"]


def test_chart_on_disk_source(prebuilt_config: dict[str, Any], tmp_path: Path) -> None:
    chart = tmp_path / "jupyterhub"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: jupyterhub\nversion: 4.4.0\n")
    cfg = copy.deepcopy(prebuilt_config)
    cfg["chart"] = {"path": str(chart)}
    release = run(cfg).one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["chart"] == str(chart)
    assert not release.inputs.get("repositoryOpts")
    assert not release.inputs.get("version"), "Helm takes the version from the chart itself"
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: jupyterhub\nversion: 4.3.0\n")
    record = Run()
    with pytest.raises(pulumi.RunError, match=r"gpu-jupyterhub:chart\.path: .* version '4\.3\.0'"):
        run(cfg, record=record)
    assert [r.type for r in record.resources] == ["pulumi:pulumi:Stack"], "nothing half-deployed"


def test_a_secret_not_set_yet_is_named_with_the_command_that_sets_it(base_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(base_config)
    del cfg["registry"]["password"]
    del cfg["auth"]["oidc"]["clientSecret"]
    record = Run()
    with pytest.raises(pulumi.RunError) as err:
        run(cfg, record=record)
    for key in ("gpu-jupyterhub:registry.password", "gpu-jupyterhub:auth.oidc.clientSecret"):
        assert f"pulumi config set --secret --path '{key}'" in str(err.value)
    assert [r.type for r in record.resources] == ["pulumi:pulumi:Stack"]


def _pull_auth(r: Any) -> dict[str, str]:
    doc = json.loads(r.by_name("harbor-pull-secret").inputs["stringData"][".dockerconfigjson"])
    return doc["auths"]["harbor.lab.example"]


def test_pods_pull_with_the_pull_only_account_when_one_is_given(base_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(base_config)
    cfg["registry"] = {**cfg["registry"], "pullUsername": "robot$jupyter+puller", "pullPassword": "pull-token-5e1"}
    entry = _pull_auth(run(cfg))
    assert entry["username"] == "robot$jupyter+puller" and entry["password"] == "pull-token-5e1"
    assert SECRETS["registry"] not in json.dumps(entry), "the push token stays with the image builds"


def test_without_a_pull_account_the_push_account_is_used_with_a_warning(base_config: dict[str, Any]) -> None:
    r = run(copy.deepcopy(base_config))
    assert _pull_auth(r)["password"] == SECRETS["registry"]
    from components.core.config_load import parse_config
    from components.core.values import registry_notes

    [note] = registry_notes(parse_config(base_config))
    assert "pull-only robot account" in note


def test_prebuilt_images_without_credentials_need_no_pull_secret(prebuilt_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(prebuilt_config)
    cfg["registry"] = {"host": "harbor.lab.example", "project": "jupyter"}
    r = run(cfg)
    assert not [x for x in r.resources if x.name == "harbor-pull-secret"]
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["singleuser"]["image"]["pullSecrets"] == []
    for ds in r.of_type("kubernetes:apps/v1:DaemonSet"):
        assert "imagePullSecrets" not in ds.inputs["spec"]["template"]["spec"]


def test_only_the_availability_service_reads_the_cluster_and_only_lists_and_watches(
    base_config: dict[str, Any],
) -> None:
    """Issue 25: the hub's ClusterRole used to list every pod of the cluster; now no binding names the hub's
    ServiceAccount, and the one ClusterRole (list and watch nodes and pods) is bound to the service's own."""
    r = run(copy.deepcopy(base_config))
    role = r.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    assert role.inputs["rules"] == [{"apiGroups": [""], "resources": ["nodes", "pods"], "verbs": ["list", "watch"]}]
    binding = r.one("kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding")
    assert binding.inputs["subjects"] == [
        {"kind": "ServiceAccount", "name": "gpu-availability", "namespace": "jupyterhub"}
    ]
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]
    assert "gpu-jupyterhub:availability:GpuAvailability" in binding.parent
    deployment = r.one("kubernetes:apps/v1:Deployment")
    pod = deployment.inputs["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "gpu-availability"
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert "/usage" in values["hub"]["extraConfig"]["20-live-profiles"]
    assert values["hub"]["networkPolicy"]["egress"][0]["ports"] == [{"port": 8181}]
    # the service is left out with live availability: no ClusterRole at all then
    off = copy.deepcopy(base_config)
    off.setdefault("profiles", {})["liveAvailability"] = False
    quiet = run(off)
    assert not quiet.of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
    assert not quiet.of_type("kubernetes:apps/v1:Deployment")


def test_the_hub_reads_no_secret_of_its_namespace(base_config: dict[str, Any]) -> None:
    """Issue 25: the chart's hub Role let the hub's service account read every Secret of the namespace, the
    backup Secret (restic password, S3 keys) among them. The chart's RBAC is off; our Role has what KubeSpawner
    uses, no Secrets, bound to the chart's hub service account, and exists before the release."""
    from tests.hubconfig import render

    r = run(copy.deepcopy(base_config))
    role = r.one("kubernetes:rbac.authorization.k8s.io/v1:Role")
    rules = role.inputs["rules"]
    assert not any("secrets" in rule["resources"] or "*" in rule["resources"] for rule in rules)
    assert {res for rule in rules for res in rule["resources"]} == {
        "pods",
        "persistentvolumeclaims",
        "services",
        "events",
    }
    binding = r.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert binding.inputs["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "jupyterhub"}]
    assert binding.inputs["roleRef"]["name"] == role.inputs["metadata"]["name"]
    for obj in (role, binding):
        assert "gpu-jupyterhub:hub:JupyterHub" in obj.parent
        validate(manifest_from_inputs(obj.type, obj.inputs))
    values = r.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    assert values["rbac"] == {"create": False}
    rendered = render(values)
    assert not [o for o in rendered if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]
    (account,) = [o for o in rendered if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "hub"]
    assert account["metadata"]["name"] == binding.inputs["subjects"][0]["name"]
