"""Small parts of the values and profiles, pinned whole (mutation testing, scripts/mutation.sh, found the
namespace's audit labels, the registry notes, the escaping of unusual node names and the texts of the spawn
form unasserted)."""

from __future__ import annotations

import copy
import re
from typing import Any

from components.cli.plan import render_table
from components.core.config import ImagesConfig
from components.core.config_load import parse_config
from components.core.nodes import parse_nodes
from components.core.profile_options import ANY_NODE, names_regex
from components.core.profiles import build_profiles
from components.core.values import auth_notes, pod_security_labels, registry_notes
from tests.conftest import BASE_CONFIG, DIGEST, GIVEN_REFS
from tests.fixtures.nodefactory import SCENARIOS


def cfg(**patch: Any) -> Any:
    return parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": GIVEN_REFS}, **patch})


def test_the_namespace_enforces_restricted_and_always_warns_and_audits_at_restricted() -> None:
    restricted = {
        f"pod-security.kubernetes.io/{mode}{suffix}": value
        for mode in ("enforce", "warn", "audit")
        for suffix, value in (("", "restricted"), ("-version", "latest"))
    }
    assert pod_security_labels(cfg()) == restricted
    shared = pod_security_labels(cfg(storage={"sharedCode": {"hostPath": "/srv/code"}}))
    assert shared == restricted, "shared code is a claim: nothing lowers the namespace's level"


def test_registry_notes_say_what_pods_pull_with() -> None:
    assert registry_notes(cfg()) == [
        "registry.pullUsername/pullPassword are not set: user pods pull with the push robot account, whose token "
        "then sits in the user namespace; create a pull-only robot account in Harbor"
    ]
    pull = {**BASE_CONFIG["registry"], "pullUsername": "robot$pull", "pullPassword": "pull-token-value-1"}
    assert registry_notes(cfg(registry=pull)) == []
    public = {"host": "harbor.lab.example", "project": "jupyter"}
    assert registry_notes(cfg(registry=public)) == [
        "no registry credentials: images must be pullable without them (a public project, or node credentials)"
    ]


def test_shared_password_with_several_users_is_flagged_as_not_separating_them() -> None:
    shared = {"mode": "shared-password", "sharedPassword": "shared-password-1"}
    assert auth_notes(cfg()) == [], "oidc keeps users apart"
    assert auth_notes(cfg(auth={**shared, "allowedUsers": ["ann"]})) == []
    several = cfg(auth={**shared, "allowedUsers": ["bob", "ann", "cy", "dee", "eve", "fay"]})
    note = (
        "auth.mode shared-password with 6 allowedUsers (ann, bob, cy, dee, eve, ...): the password does not tell "
        "users apart, so anyone who has it can log in under any of these names and open that user's servers and "
        "notebooks; use native or oidc to keep users from each other (admin names need auth.adminPassword)"
    )
    assert auth_notes(several) == [note]
    table = render_table(several, build_profiles(several, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS), wide=True)
    assert f"- {note}" in table.split("Notes:", 1)[1]


def test_a_typed_node_name_must_be_one_of_the_class_exactly() -> None:
    names = ["gpu.b", "GPU_7", "x+y", "a-1"]
    pattern = names_regex(names)
    # "." in a class and other names escaped: a browser's form check (unicode mode) takes the same pattern
    assert pattern == r"^(?:GPU_7|a-1|gpu[.]b|x\+y)(?![\s\S])"
    for name in names:
        assert re.match(pattern, name), name
    for other in ("gpuxb", "gpu-b", "xxy", "x+yy", "a-1\n", "GPU_", "a-12"):
        assert re.match(pattern, other) is None, other


def test_a_driver_at_the_cuda_12_minimum_is_told_to_enable_the_cuda_12_images() -> None:
    from components.core.image_specs import CUDA12, CUDA13
    from components.core.nodes import parse_nodes
    from components.core.profiles import build_profiles
    from tests.fixtures.nodefactory import node, node_list

    drivers = {
        "at-minimum": f"{CUDA12.min_driver_major}.0.1",
        "below": f"{CUDA12.min_driver_major - 1}.9.9",
        "newest": f"{CUDA13.min_driver_major}.1.2",
    }
    doc = node_list(*(node(name, gpus=1, driver=driver) for name, driver in drivers.items()))
    rows = {r.name: r for r in build_profiles(cfg(), parse_nodes(doc), GIVEN_REFS).nodes}
    need = f"images need {CUDA13.min_driver_major}+"
    assert rows["at-minimum"].reason == (
        f"driver {drivers['at-minimum']}, {need}: upgrade the driver or enable the CUDA 12 images (images.cuda12: true)"
    )
    assert rows["below"].reason == (
        f"driver {drivers['below']}, {need} ({CUDA12.min_driver_major}+ with images.cuda12): upgrade the driver"
    )
    assert rows["newest"].included and not rows["at-minimum"].included


def test_the_plan_shows_given_digests_or_the_tags_a_build_will_pin() -> None:
    from components.core.values import image_refs_for_plan

    assert image_refs_for_plan(cfg()) == GIVEN_REFS
    built = parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"version": "2.1.0"}})
    refs = image_refs_for_plan(built)
    assert refs == {s.name: f"harbor.lab.example/jupyter/{s.name}:2.1.0" for s in built.images.specs()}
    assert "jupyter-ml-cpu" in refs


def test_gpus_described_for_the_plan_table() -> None:
    from components.core.node_table import describe_gpus
    from components.core.nodes import parse_nodes
    from tests.fixtures.nodefactory import node, node_list

    doc = node_list(
        node("plain", gpus=2, product="NVIDIA-GeForce-RTX-4090", memory_mib=24564),
        node("big", gpus=1, memory_mib=1024 * 513),  # 513 GiB, not 512 (rounding, 1024 MiB each)
        node("unlabelled", gpus=2, labelled=False),
        node("sliced", gpus=1, replicas=4, product="NVIDIA-A10"),
        node("sick", gpus=4, unhealthy=1),
        node("mig", mig={"nvidia.com/mig-1g.10gb": 2, "nvidia.com/mig-3g.40gb": 1}, product="NVIDIA-A100"),
    )
    described = {n.name: describe_gpus(n) for n in parse_nodes(doc).nodes}
    assert described == {
        "plain": "2 x NVIDIA GeForce RTX 4090, 24 GiB",
        "big": "1 x NVIDIA GeForce RTX 4090, 513 GiB",
        "unlabelled": "2 x NVIDIA GPU (unlabelled), memory unknown",
        "sliced": "1 x NVIDIA A10 SHARED, 24 GiB, time-sliced (4 slots, 1 per user)",  # GFD adds -SHARED
        "sick": "4 x NVIDIA GeForce RTX 4090, 24 GiB, 1 of 4 unhealthy",
        "mig": "1 x NVIDIA A100, 24 GiB, MIG 2 x 1g.10gb + 1 x 3g.40gb",
    }


def test_a_mig_node_whose_whole_gpu_is_partitioned_is_not_unhealthy() -> None:
    from components.core.node_table import describe_gpus
    from components.core.nodes import parse_node
    from tests.fixtures.nodefactory import node

    doc = node("mig", mig={"nvidia.com/mig-1g.10gb": 2}, product="NVIDIA-A100")
    doc["status"]["allocatable"]["nvidia.com/gpu"] = "0"
    doc["status"]["capacity"] = {**doc["status"].get("capacity", {}), "nvidia.com/gpu": "1"}
    mig = parse_node(doc)
    assert (mig.gpu_capacity, mig.gpu_allocatable) == (1, 0)
    assert "unhealthy" not in describe_gpus(mig)


def test_gpu_classes_split_by_product_and_memory_and_reasons_name_every_taint() -> None:
    from components.core.nodes import parse_nodes
    from components.core.profiles import build_profiles
    from tests.fixtures.nodefactory import node, node_list

    taints = [{"key": "a", "value": "x", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]
    doc = node_list(
        node("g1", gpus=1, product="NVIDIA-A10", memory_mib=24576),
        node("g2", gpus=1, product="NVIDIA-L4", memory_mib=24576),
        node("g3", gpus=1, product="NVIDIA-A10", memory_mib=49152),
        node("off", gpus=1, cordoned=True),
        node("tainted", gpus=1, taints=taints),
    )
    plan = build_profiles(cfg(), parse_nodes(doc), GIVEN_REFS)
    classes = [p for p in plan.profiles if "node" in p.get("profile_options", {})]
    assert sorted(sorted(c for c in p["profile_options"]["node"]["choices"] if c != "*") for p in classes) == [
        ["g1"],
        ["g2"],
        ["g3"],
    ]
    reasons = {r.name: r.reason for r in plan.nodes}
    assert reasons["off"] == "cordoned (unschedulable)"
    assert (
        reasons["tainted"] == "taint a=x:NoSchedule, b:NoExecute is not tolerated by GPU pods (profiles.gpuTolerations)"
    )


def test_without_sizing_descriptions_show_the_fixed_resources() -> None:
    from components.core.nodes import parse_nodes
    from components.core.profiles import build_profiles
    from tests.fixtures.nodefactory import SCENARIOS

    fixed = cfg(profiles={"sizing": {"enabled": False}})
    plan = build_profiles(fixed, parse_nodes(SCENARIOS["mixed"]), GIVEN_REFS)
    by_slug = {p["slug"]: p["description"] for p in plan.profiles}
    r = fixed.profiles.gpu
    assert by_slug["gpu"] == (
        f"1 GPU on any GPU node; PyTorch with CUDA; {r.cpuGuarantee:g}-{r.cpuLimit:g} CPU, "
        f"{r.memGuarantee}-{r.memLimit} memory"
    )


# ---- the spawn form: every profile's slug, name, description and default, and every choice's label, for the
# node fixtures that reach each kind of profile (a wrong size in a description, a lost "time-sliced" or CUDA 12
# label, a second default). Image choices are named after the images (image_specs): compared by rule.

CLASS = "pick GPUs and a node; CPU and memory grow with the GPUs"


def plan(scenario: str, **patch: Any) -> Any:
    refs = dict(GIVEN_REFS)
    if patch.get("images", {}).get("cuda12"):
        names = [s.name for s in ImagesConfig(cuda12=True).specs()]
        refs = {n: f"harbor.lab.example/jupyter/{n}@{DIGEST}" for n in names}
        patch["images"] = {"build": False, "refs": refs, "cuda12": True}
    cfg = parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": refs}, **patch})
    return build_profiles(cfg, parse_nodes(SCENARIOS[scenario]), refs)


def form(profiles: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(slug, name, description, default) and, per option but the image, (label, default) of each choice."""
    out: list[tuple[Any, ...]] = []
    for p in profiles:
        out.append((p["slug"], p["display_name"], p["description"], p.get("default", False)))
        for name, option in p.get("profile_options", {}).items():
            if name != "image":
                choices = [(c["display_name"], c.get("default", False)) for c in option["choices"].values()]
                out.append((name, option["display_name"], choices))
    return out


def images(profile: dict[str, Any]) -> list[tuple[str, str, bool]]:
    option = profile["profile_options"]["image"]
    assert option["display_name"] == "Image"
    return [(k, c["display_name"], c.get("default", False)) for k, c in option["choices"].items()]


SIZES = [("1.5 CPU · 6 GiB", True), ("3 CPU · 12 GiB", False), ("6 CPU · 24 GiB", False), ("12 CPU · 48 GiB", False)]


def test_the_form_of_a_mixed_cluster() -> None:
    p = plan("mixed", storage={"sharedCode": {"hostPath": "/srv/code"}})
    assert form(p.profiles) == [
        ("cpu", "Standard Environment (CPU)", "no GPU; 1.5 CPU · 6 GiB to 12 CPU · 48 GiB", True),
        ("size", "Size", SIZES),
        (
            "sharedCode",
            "Shared code",
            [("Without shared code (any node)", True), ("With /srv/code read-only (runs on cp-1)", False)],
        ),
        (
            "agent-dev",
            "Agent Development",
            "LangChain, LangGraph and vector stores; no GPU; 1.5 CPU · 6 GiB to 12 CPU · 48 GiB",
            False,
        ),
        ("size", "Size", SIZES),
        ("gpu", "GPU Environment (auto-select)", "1 GPU on any GPU node; PyTorch with CUDA; 12 CPU · 48 GiB", False),
        (
            "fine-tuning",
            "Fine-tuning (Unsloth + QLoRA)",
            "1 GPU, more memory; Unsloth, TRL, PEFT; 24 CPU · 96 GiB",
            False,
        ),
        (
            "gpu-nvidia-geforce-rtx-3090-24gib-x1",
            "NVIDIA GeForce RTX 3090, 24 GiB (up to 1 per server)",
            f"1 node(s); {CLASS}; 24 CPU · 96 GiB",
            False,
        ),
        ("gpus", "GPUs", [("1 GPU · 24 CPU · 96 GiB", True)]),
        (
            "node",
            "Node",
            [("Any of 1 node(s)", True), ("gpu-node-1: 1 x NVIDIA GeForce RTX 3090, 24 GiB", False)],
        ),
        (
            "gpu-nvidia-geforce-rtx-4090-24gib-x2",
            "NVIDIA GeForce RTX 4090, 24 GiB (up to 2 per server)",
            f"2 node(s); {CLASS}; 12 CPU · 48 GiB",
            False,
        ),
        ("gpus", "GPUs", [("1 GPU · 12 CPU · 48 GiB", True), ("2 GPUs · 24 CPU · 96 GiB", False)]),
        (
            "node",
            "Node",
            [
                ("Any of 2 node(s)", True),
                ("gpu-node-2: 2 x NVIDIA GeForce RTX 4090, 24 GiB", False),
                ("gpu-node-3: 2 x NVIDIA GeForce RTX 4090, 24 GiB", False),
            ],
        ),
    ]
    cpu, _agent, auto, tuning, *classes = p.profiles
    assert "profile_options" not in tuning, "one CUDA variant: the fine-tuning image is fixed"
    assert images(cpu) == [
        ("jupyter-ml-cpu", "jupyter-ml-cpu", True),
        ("jupyter-agent-dev", "jupyter-agent-dev", False),
    ]
    gpu_names = [name for name, _, _ in images(auto)]
    assert gpu_names[0] == "jupyter-ml-gpu" and "jupyter-fine-tuning" in gpu_names
    for profile in (auto, *classes):
        assert images(profile) == [(n, n, i == 0) for i, n in enumerate(gpu_names)], profile["slug"]
    unlisted = cpu["profile_options"]["image"]["unlisted_choice"]
    assert {k: v for k, v in unlisted.items() if k not in ("validation_regex", "kubespawner_override")} == {
        "enabled": True,
        "display_name": "Other image from harbor.lab.example",
        "display_name_in_choices": "Other image from harbor.lab.example...",
        # HTML-escaped: the form prints it unescaped into a title attribute, where the browser shows <name>
        "validation_message": "Only images from harbor.lab.example/jupyter/&lt;name&gt; with a tag or digest",
    }


def test_mig_time_sliced_and_mps_classes() -> None:
    mig = plan("mig")
    assert form(mig.profiles[2:]) == [
        (
            "gpu-nvidia-a100-sxm4-80gb-80gib-mig-1g-10gb-3g-40gb",
            "NVIDIA A100 SXM4 80GB, 80 GiB (MIG 1g.10gb, 3g.40gb)",
            f"1 node(s); {CLASS}; 6 CPU · 24 GiB",
            False,
        ),
        ("gpus", "GPUs", [("1 x MIG 1g.10gb · 6 CPU · 24 GiB", True), ("1 x MIG 3g.40gb · 6 CPU · 24 GiB", False)]),
        (
            "node",
            "Node",
            [
                ("Any of 1 node(s)", True),
                ("a100-1: 1 x NVIDIA A100 SXM4 80GB, 80 GiB, MIG 4 x 1g.10gb + 1 x 3g.40gb", False),
            ],
        ),
    ]
    assert list(mig.profiles[2]["profile_options"]["gpus"]["choices"]) == ["mig-1g-10gb", "mig-3g-40gb"]
    assert "only MIG (mixed strategy) GPUs: no auto-select or fine-tuning profile; use the MIG profiles" in mig.notes
    sharing = {p["slug"]: (p["display_name"], p["description"]) for p in plan("sharing").profiles[4:]}
    assert sharing == {
        "gpu-nvidia-a10-shared-22gib-mps": (
            "NVIDIA A10 SHARED, 22 GiB (up to 1 per server, MPS)",
            f"1 node(s); {CLASS}; 6 CPU · 24 GiB",
        ),
        "gpu-nvidia-l4-22gib-x1": ("NVIDIA L4, 22 GiB (up to 1 per server)", f"1 node(s); {CLASS}; 24 CPU · 96 GiB"),
        "gpu-tesla-t4-shared-15gib-shared": (
            "Tesla T4 SHARED, 15 GiB (up to 1 per server, time-sliced)",
            f"1 node(s); {CLASS}; 6 CPU · 24 GiB",
        ),
    }


def test_cuda_12_images_and_classes_say_which_drivers_they_are_for() -> None:
    p = plan("drivers", images={"cuda12": True})
    by_slug = {x["slug"]: x for x in p.profiles}
    cu12 = " (CUDA 12, for drivers 525-579)"
    auto = images(by_slug["gpu"])
    assert [name for name, _, _ in auto if name.endswith("-cu12")] == [
        name + "-cu12" for name, _, _ in auto if not name.endswith("-cu12")
    ]
    assert auto == [(n, n + cu12 if n.endswith("-cu12") else n, i == 0) for i, (n, _, _) in enumerate(auto)]
    assert images(by_slug["fine-tuning"]) == [
        ("jupyter-fine-tuning", "jupyter-fine-tuning", True),
        ("jupyter-fine-tuning-cu12", "jupyter-fine-tuning-cu12" + cu12, False),
    ]
    assert [(s, x["display_name"]) for s, x in by_slug.items() if s.startswith("gpu-")] == [
        ("gpu-nvidia-a100-sxm4-80gb-80gib-x1", "NVIDIA A100 SXM4 80GB, 80 GiB (up to 1 per server)"),
        ("gpu-nvidia-geforce-rtx-4090-24gib-x1", "NVIDIA GeForce RTX 4090, 24 GiB (up to 1 per server)"),
        (
            "gpu-nvidia-geforce-rtx-4090-24gib-x1-cu12",
            "NVIDIA GeForce RTX 4090, 24 GiB (up to 1 per server, CUDA 12 images)",
        ),
        ("gpu-nvidia-l40s-45gib-x2-cu12", "NVIDIA L40S, 45 GiB (up to 2 per server, CUDA 12 images)"),
    ]
    cu12_class = images(by_slug["gpu-nvidia-l40s-45gib-x2-cu12"])
    assert cu12_class[0] == ("jupyter-ml-gpu-cu12", "jupyter-ml-gpu-cu12" + cu12, True)
    assert all(label == name + cu12 for name, label, _ in cu12_class)
    reasons = {r.name: r.reason for r in p.nodes}
    assert reasons["gpu-550"] == "GPU choices, CUDA 12 images (driver 550.127.05)"
    assert reasons["gpu-580"] == "GPU choices (driver 580.95.05)"
    assert reasons["gpu-nolabel"] == "GPU choices (driver unknown)"
    assert reasons["gpu-470"] == "driver 470.256.02, images need 580+ (CUDA 12 images: 525+): upgrade the driver"
    assert p.notes == [
        "driver unknown on gpu-nolabel (no nvidia.com/cuda.driver-version.major label: GPU feature discovery not "
        "running?); offered the CUDA 13 images, which need driver 580+"
    ]


def test_one_size_or_none_is_no_picker() -> None:
    tiny = plan("mixed", profiles={"sizing": {"fractions": [0.0625]}})
    cpu = tiny.profiles[0]
    assert "size" not in cpu["profile_options"] and "profile_options" not in tiny.profiles[1]
    assert cpu["description"] == "no GPU; 1.5 CPU · 6 GiB"
    fixed = plan("mixed", profiles={"sizing": {"enabled": False}}).profiles[0]
    r = parse_config({**BASE_CONFIG, "images": {"build": False, "refs": GIVEN_REFS}}).profiles.cpu
    assert fixed["description"] == (
        f"no GPU; {r.cpuGuarantee:g}-{r.cpuLimit:g} CPU, {r.memGuarantee}-{r.memLimit} memory"
    )
    assert ANY_NODE not in fixed.get("profile_options", {})


# ---- what mutation testing found unasserted in the profiles and values: the node option of a large class, the
# resources of a class profile, the affinity of a class whose nodes lack a label, the GPU profiles the culler
# watches, and the image rule's tag and digest forms.


def gpu_nodes(count: int, **kw: Any) -> dict[str, Any]:
    from tests.fixtures.nodefactory import node, node_list

    return node_list(*(node(f"g{i:03d}", gpus=1, product="NVIDIA-L4", memory_mib=23034, **kw) for i in range(count)))


def class_profile(count: int, **kw: Any) -> dict[str, Any]:
    cfg = parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}})
    profiles = build_profiles(cfg, parse_nodes(gpu_nodes(count, **kw)), dict(GIVEN_REFS)).profiles
    (profile,) = [p for p in profiles if p["slug"].startswith("gpu-")]
    return profile


def test_a_class_of_exactly_the_listing_limit_lists_every_node_and_one_more_gets_a_name_field() -> None:
    from components.core.profile_options import HOSTNAME_LABEL, NODE_CHOICES_MAX

    listed = class_profile(NODE_CHOICES_MAX)["profile_options"]["node"]
    assert len(listed["choices"]) == NODE_CHOICES_MAX + 1 and "unlisted_choice" not in listed
    assert listed["choices"][ANY_NODE] == {
        "display_name": f"Any of {NODE_CHOICES_MAX} node(s)",
        "default": True,
        "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: None}},
    }
    option = class_profile(NODE_CHOICES_MAX + 1)["profile_options"]["node"]
    assert list(option["choices"]) == [ANY_NODE]
    assert option["choices"][ANY_NODE]["kubespawner_override"] == {"node_selector": {HOSTNAME_LABEL: None}}
    unlisted = dict(option["unlisted_choice"])
    regex = unlisted.pop("validation_regex")
    assert re.fullmatch(regex, "g000") and re.fullmatch(regex, "g050") and not re.fullmatch(regex, "g051")
    assert unlisted == {
        "enabled": True,
        "display_name": "Node name (one of the 51 NVIDIA L4 nodes)",
        "display_name_in_choices": "A node by name...",
        "validation_message": "The name of one of the 51 NVIDIA L4 nodes, such as g000",
        "kubespawner_override": {"node_selector": {HOSTNAME_LABEL: "{value}"}},
    }


def test_a_class_profile_starts_at_its_default_size_and_limits() -> None:
    profile = class_profile(2)
    override = profile["kubespawner_override"]
    default = next(c for c in profile["profile_options"]["gpus"]["choices"].values() if c.get("default"))
    for key in ("cpu_guarantee", "cpu_limit", "mem_guarantee", "mem_limit"):
        assert override[key] == default["kubespawner_override"][key], key
    assert override["cpu_guarantee"] > 0 and override["mem_guarantee"]


def test_a_class_without_the_memory_label_is_kept_in_by_host_name() -> None:
    from components.core.gpu_profiles import class_affinity

    labelled = list(parse_nodes(gpu_nodes(2)).nodes)
    terms = class_affinity(labelled, [{"matchExpressions": []}])
    assert [e["key"] for e in terms[0]["matchExpressions"]] == ["nvidia.com/gpu.product", "nvidia.com/gpu.memory"]
    unknown = [n.model_copy(update={"gpu": n.gpu.model_copy(update={"memory_mib": None})}) for n in labelled]
    assert class_affinity(unknown, [{"matchExpressions": []}]) == [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["g000", "g001"]}]}
    ]


def test_the_gpu_profiles_are_those_that_can_hold_a_gpu_in_the_profile_or_a_choice() -> None:
    from components.core.hub_services import gpu_profile_slugs

    cpu = {"slug": "cpu", "kubespawner_override": {"extra_resource_limits": {}}}
    fixed = {"slug": "fixed", "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}}}
    chosen = {
        "slug": "chosen",
        "kubespawner_override": {},
        "profile_options": {
            "gpus": {"choices": {"one": {"kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}}}}}
        },
    }
    bare = {"slug": "bare", "profile_options": {"size": {"choices": {"s": {}}}}}
    assert gpu_profile_slugs([cpu, fixed, chosen, bare]) == ["fixed", "chosen"]
    assert gpu_profile_slugs(plan("mixed").profiles) == [
        "gpu",
        "fine-tuning",
        "gpu-nvidia-geforce-rtx-3090-24gib-x1",
        "gpu-nvidia-geforce-rtx-4090-24gib-x2",
    ]


def test_the_image_rule_takes_tags_and_lowercase_digests_of_the_project_only() -> None:
    from components.core.image_rule import guard_pattern

    rule = re.compile(guard_pattern("harbor.lab.example", "jupyter"))
    good = [
        "harbor.lab.example/jupyter/my-image:v1.2-rc_3",
        "harbor.lab.example/jupyter/team/my_image:Latest",
        f"harbor.lab.example/jupyter/x@{DIGEST}",
    ]
    bad = [
        "harbor.lab.example/jupyter/x",
        f"harbor.lab.example/jupyter/x@{DIGEST.upper()}",
        "harbor.lab.example/other/x:v1",
        "harborXlab.example/jupyter/x:v1",
        "docker.io/jupyter/x:v1",
        "harbor.lab.example/jupyter/X:v1",
        "harbor.lab.example/jupyter/x:-v1",
    ]
    assert [bool(rule.fullmatch(r)) for r in good + bad] == [True] * len(good) + [False] * len(bad)


def test_a_mig_class_and_its_slices_start_at_the_default_size_not_the_fixed_resources() -> None:
    profile = plan("mig").profiles[2]
    sized = {"cpu_guarantee": 6.0, "cpu_limit": 6.0, "mem_guarantee": "24G", "mem_limit": "24G"}
    assert {k: profile["kubespawner_override"][k] for k in sized} == sized
    for choice in profile["profile_options"]["gpus"]["choices"].values():
        assert {k: choice["kubespawner_override"][k] for k in sized} == sized


def test_class_slugs_say_unknown_memory_round_to_whole_gib_and_never_collide() -> None:
    from tests.fixtures.nodefactory import node, node_list

    slugs = [p["slug"] for p in plan("unlabelled").profiles if p["slug"].startswith("gpu-")]
    assert slugs == ["gpu-nvidia-gpu-unlabelled-unknown-memory-x2"]
    cfg = parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}})
    nodes = node_list(
        node("a", gpus=1, product="NVIDIA-L4", memory_mib=46592),  # 45.5 GiB: rounds to 46
        node("b", gpus=1, product="NVIDIA_L4", memory_mib=46592),  # another product, the same slug
        node("c", gpus=1, product="NVIDIA-L4", memory_mib=46591),
    )
    profiles = build_profiles(cfg, parse_nodes(nodes), dict(GIVEN_REFS)).profiles
    assert [(p["slug"], p["display_name"]) for p in profiles if p["slug"].startswith("gpu-")] == [
        ("gpu-nvidia-l4-45gib-x1", "NVIDIA L4, 45 GiB (up to 1 per server)"),
        ("gpu-nvidia-l4-46gib-x1", "NVIDIA L4, 46 GiB (up to 1 per server)"),
        ("gpu-nvidia-l4-46gib-x1-2", "NVIDIA_L4, 46 GiB (up to 1 per server)"),
    ]


def test_notes_for_a_cluster_without_gpus_and_for_a_host_path_mount() -> None:
    p = plan("nogpu", storage={"sharedCode": {"hostPath": "/srv/code"}})
    assert (
        "no usable GPU node (none has nvidia.com/gpu or MIG resources allocatable, Ready, schedulable, with "
        "tolerated taints and a driver the images support): no GPU profiles"
    ) in p.notes
    assert not [n for n in p.notes if n.startswith("WARNING") or "privileged" in n]


def test_a_node_labelled_gpu_present_without_allocatable_gpus_is_explained() -> None:
    from tests.fixtures.nodefactory import node, node_list

    doc = node_list(node("gpu-nodp", gpus=1))
    for counts in ("allocatable", "capacity"):
        doc["items"][0]["status"].get(counts, {}).pop("nvidia.com/gpu", None)
    cfg = parse_config({**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}})
    (row,) = build_profiles(cfg, parse_nodes(doc), dict(GIVEN_REFS)).nodes
    assert (row.included, row.reason) == (
        False,
        "labelled GPU-present but no nvidia.com/gpu allocatable (device plugin not running?)",
    )


def test_user_pods_pull_with_the_secret_only_when_there_are_credentials() -> None:
    from components.core.values import PULL_SECRET, pull_secrets

    assert pull_secrets(cfg()) == [PULL_SECRET]
    without = copy.deepcopy(BASE_CONFIG)
    without["registry"] = {"host": "harbor.lab.example", "project": "jupyter"}
    assert pull_secrets(parse_config({**without, "images": {"build": False, "refs": dict(GIVEN_REFS)}})) == []


def test_the_gpu_culler_checks_a_quarter_of_its_timeout_at_most_every_everyseconds() -> None:
    from components.core.hub_services import GPU_CULLER_SCOPES, gpu_culler_values

    def every(timeout: int, every_seconds: int = 3600) -> str:
        c = cfg(culling={"gpuTimeoutSeconds": timeout, "everySeconds": every_seconds})
        values = gpu_culler_values(c, plan("mixed"))
        assert values["loadRoles"] == {"gpu-culler": {"services": ["gpu-culler"], "scopes": list(GPU_CULLER_SCOPES)}}
        (flag,) = [a for a in values["services"]["gpu-culler"]["command"] if a.startswith("--every=")]
        return flag

    assert every(2000) == "--every=500"
    assert every(200) == "--every=60", "never more often than a minute"
    assert every(2000, every_seconds=300) == "--every=300"


def test_gpu_profiles_skip_options_without_choices() -> None:
    from components.core.hub_services import gpu_profile_slugs

    free_form = {"slug": "free", "kubespawner_override": {}, "profile_options": {"image": {"unlisted_choice": {}}}}
    assert gpu_profile_slugs([free_form]) == []


def test_skipped_nodes_are_rows_that_say_whether_user_pods_are_kept_off() -> None:
    from tests.fixtures.nodefactory import node, node_list

    rows = {r.name: r for r in plan("hostile").nodes}
    assert (rows["gpu-exa"].control_plane, rows["gpu-exa"].gpus, rows["gpu-exa"].included) == (False, "?", False)
    assert rows["gpu-exa"].reason == (
        "unreadable node data: nvidia.com/gpu = '1E' is not a plausible GPU count (more than 1024); no user pods"
    )
    # the same name also read well once (a duplicate): the readable entry is used, the other is only reported
    good = node("gpu-a", gpus=1, control_plane=True)
    bad = copy.deepcopy(good)
    bad["status"]["allocatable"]["nvidia.com/gpu"] = "1E"
    both = build_profiles(cfg(), parse_nodes(node_list(good, bad)), dict(GIVEN_REFS)).nodes
    assert [(r.control_plane, r.included, r.reason) for r in both] == [
        (True, True, "GPU choices (driver 580.95.05)"),
        (False, False, "unreadable node data: nvidia.com/gpu = '1E' is not a plausible GPU count (more than 1024)"),
    ]


def test_the_storage_check_note_names_ten_nodes_and_counts_the_rest() -> None:
    (note,) = [n for n in plan("large-300", verifyStorage=True).notes if n.startswith("verifyStorage")]
    names = ", ".join(f"cpu-{i:04d}" for i in range(150, 160))
    assert note == f"verifyStorage: the storage check runs on 300 node(s) where user pods can run: {names} and 290 more"


def test_each_image_choice_sets_its_image_and_the_nodes_it_runs_on() -> None:
    p = plan("drivers", images={"cuda12": True})
    auto = next(x for x in p.profiles if x["slug"] == "gpu")
    for name, choice in auto["profile_options"]["image"]["choices"].items():
        override = choice["kubespawner_override"]
        assert override["image"] == f"harbor.lab.example/jupyter/{name}@{DIGEST}"
        drivers = [e for t in override["node_affinity_required"] for e in t["matchExpressions"] if "driver" in e["key"]]
        assert drivers, f"{name} is kept to nodes whose driver runs it"


def test_a_node_list_that_is_not_an_object_is_named() -> None:
    import pytest

    from components.core.nodes import NodeDataError

    with pytest.raises(NodeDataError) as e:
        parse_nodes([])  # type: ignore[arg-type]
    assert str(e.value) == "node list must be a JSON object with an `items` list (kubectl get nodes -o json)"


def test_the_culler_is_off_when_culling_is_and_mounts_its_script() -> None:
    from components.core.hub_services import GPU_CULLER_PATH, gpu_culler_values

    assert gpu_culler_values(cfg(culling={"enabled": False}), plan("mixed")) == {}
    assert gpu_culler_values(cfg(culling={"gpuTimeoutSeconds": 0}), plan("mixed")) == {}
    files = gpu_culler_values(cfg(), plan("mixed"))["extraFiles"]
    assert list(files) == ["gpu-culler"] and files["gpu-culler"]["mountPath"] == GPU_CULLER_PATH


def test_hub_tls_secret_and_the_user_pods_security_contexts() -> None:
    from components.core.values import values_from_plan

    values = values_from_plan(cfg(), plan("mixed"), dict(GIVEN_REFS))
    assert values["ingress"]["tls"] == [{"hosts": ["jupyter.lab.example"], "secretName": "jupyterhub-tls"}]
    spawner = values["hub"]["config"]["KubeSpawner"]
    # allowPrivilegeEscalation: KubeSpawner's allow_privilege_escalation (False) adds it
    assert spawner["container_security_context"] == {
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spawner["pod_security_context"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def test_network_policies_ingress_and_core_pod_placement() -> None:
    from components.core.egress_spec import user_egress_rules
    from components.core.values import CORE_POD_AFFINITY, values_from_plan

    values = values_from_plan(cfg(), plan("mixed"), dict(GIVEN_REFS))
    assert values["ingress"]["enabled"] is True
    # the hub reaches the availability service (its pods) and nothing more than the chart's own rules allow
    assert values["hub"]["networkPolicy"] == {
        "enabled": True,
        "egressAllowRules": {"privateIPs": True},
        "egress": [
            {
                "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "gpu-availability"}}}],
                "ports": [{"port": 8181}],
            }
        ],
        # the proxy reaches the GPU overview page, a hub service in the hub pod, on its port only
        "ingress": [
            {
                "from": [
                    {
                        "podSelector": {
                            "matchLabels": {"app": "jupyterhub", "release": "jupyterhub", "component": "proxy"}
                        }
                    }
                ],
                "ports": [{"port": 10101}],
            }
        ],
    }
    assert values["proxy"]["chp"]["networkPolicy"] == {
        "egress": [
            {
                "to": [
                    {"podSelector": {"matchLabels": {"app": "jupyterhub", "release": "jupyterhub", "component": "hub"}}}
                ],
                "ports": [{"port": 10101}],
            }
        ]
    }
    assert values["singleuser"]["networkPolicy"] == {
        "enabled": True,
        "egressAllowRules": {
            "cloudMetadataServer": False,
            "dnsPortsCloudMetadataServer": False,
            "dnsPortsKubeSystemNamespace": True,
            "dnsPortsPrivateIPs": False,
            "nonPrivateIPs": False,
            "privateIPs": False,
        },
        "egress": user_egress_rules([], []),  # tests/test_egress.py: what it denies
    }
    assert values["hub"]["extraPodSpec"] == {"affinity": CORE_POD_AFFINITY}
    assert values["proxy"]["chp"]["extraPodSpec"] == {"affinity": CORE_POD_AFFINITY}


def test_nodes_with_an_unknown_driver_are_named_five_at_a_time() -> None:
    from tests.fixtures.nodefactory import node, node_list

    doc = node_list(*(node(f"nodrv-{i}", gpus=1, driver=None) for i in range(7)))
    notes = build_profiles(cfg(), parse_nodes(doc), dict(GIVEN_REFS)).notes
    (note,) = [n for n in notes if n.startswith("driver unknown")]
    assert note.startswith("driver unknown on nodrv-0, nodrv-1, nodrv-2, nodrv-3, nodrv-4 and 2 more (")


def test_without_shared_code_removes_the_very_volume_and_mount_with_adds() -> None:
    option = plan("mixed", storage={"sharedCode": {"hostPath": "/srv/code"}}).profiles[0]["profile_options"]
    off, on = (option["sharedCode"]["choices"][k]["kubespawner_override"] for k in ("off", "on"))
    assert off == {"volumes": {"shared-code": None}, "volume_mounts": {"shared-code": None}}
    assert set(on["volumes"]) == set(on["volume_mounts"]) == {"shared-code"}


def test_a_guarantee_is_rounded_to_millicores() -> None:
    from components.core.profile_sizes import size_resources
    from components.core.sizing import Size

    assert size_resources(Size(cpu=3, memory_gib=12), 0.33333)["cpu_guarantee"] == 1.0
    assert size_resources(Size(cpu=1, memory_gib=4), 0.12345)["cpu_guarantee"] == 0.123


def test_one_shared_gpu_slot_is_a_shared_gpu() -> None:
    from tests.fixtures.nodefactory import node, node_list

    (gpu_node,) = parse_nodes(node_list(node("ts", gpus=1, replicas=1, renamed=True))).nodes
    assert gpu_node.gpu is not None and gpu_node.gpu.resource == "nvidia.com/gpu.shared"


def test_without_sizing_a_mig_class_and_its_slices_use_the_fixed_gpu_resources() -> None:
    gpu = {"cpuGuarantee": 2, "cpuLimit": 4, "memGuarantee": "8G", "memLimit": "16G"}
    profile = plan("mig", profiles={"sizing": {"enabled": False}, "gpu": gpu}).profiles[2]
    fixed = {"cpu_guarantee": 2, "cpu_limit": 4, "mem_guarantee": "8G", "mem_limit": "16G"}
    assert {k: profile["kubespawner_override"][k] for k in fixed} == fixed
    for choice in profile["profile_options"]["gpus"]["choices"].values():
        assert {k: choice["kubespawner_override"][k] for k in fixed} == fixed


def test_fine_tuning_image_choices_set_the_image_and_its_driver_terms() -> None:
    p = plan("drivers", images={"cuda12": True})
    tuning = next(x for x in p.profiles if x["slug"] == "fine-tuning")
    choices = tuning["profile_options"]["image"]["choices"]
    assert list(choices) == ["jupyter-fine-tuning", "jupyter-fine-tuning-cu12"]
    for name, choice in choices.items():
        override = choice["kubespawner_override"]
        assert override["image"] == f"harbor.lab.example/jupyter/{name}@{DIGEST}"
        drivers = [e for t in override["node_affinity_required"] for e in t["matchExpressions"] if "driver" in e["key"]]
        assert drivers, name
