"""What a bad stack configuration says, word for word, and the helpers behind it (mutation testing,
scripts/mutation.sh, showed the messages only checked through the plan subprocess, which mutmut cannot
attribute, and the memory comparison's units unasserted)."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from components.core.config import NAMESPACE, SECRET_PLACEHOLDER, ConfigError, StackConfig
from components.core.config_compute import _bytes
from components.core.config_load import load_stack_file, namespace_keys, parse_config
from tests.conftest import BASE_CONFIG, GIVEN_REFS, SECRETS


def problems(patch: dict[str, Any] | None = None, drop: tuple[str, ...] = ()) -> list[str]:
    """The problems of BASE_CONFIG (prebuilt images) with dotted keys set or removed."""
    raw: dict[str, Any] = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    for dotted, value in (patch or {}).items():
        *parents, last = dotted.split(".")
        target = raw
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    for dotted in drop:
        *parents, last = dotted.split(".")
        target = raw
        for part in parents:
            target = target[part]
        del target[last]
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    return err.value.problems


def test_an_unknown_key_names_what_is_allowed_there() -> None:
    assert problems({"hubb": 1}) == [
        "gpu-jupyterhub:hubb: unknown key; allowed here: auth, backup, chart, culling, hub, images, kubeContext, "
        "kubeconfig, namespace, network, nodes, profiles, registry, storage, verifyStorage"
    ]
    assert problems({"hub.tls.issuer": "x"}) == [
        "gpu-jupyterhub:hub.tls.issuer: unknown key; allowed here: clusterIssuer, secretName"
    ]
    # through an optional section (OidcConfig | None)
    assert problems({"auth.oidc.client": "x"}) == [
        "gpu-jupyterhub:auth.oidc.client: unknown key; allowed here: adminGroups, allowedGroups, authorizeUrl, "
        "clientId, clientSecret, groupsClaim, issuer, scopes, tokenUrl, userdataUrl, usernameClaim"
    ]
    assert problems({"nodes.path": "x"}) == ["gpu-jupyterhub:nodes.path: unknown key; allowed here: file"]


def test_a_missing_key_says_what_it_is_for() -> None:
    assert problems(drop=("hub.host",)) == [
        "gpu-jupyterhub:hub.host: required key is missing "
        "(Public host name of the hub (ingress host), for example jupyter.lab.example.)"
    ]
    assert problems(drop=("auth.oidc.clientId",)) == [
        "gpu-jupyterhub:auth.oidc.clientId: required key is missing "
        "(OAuth client id registered with the identity provider.)"
    ]
    assert problems({"profiles.cpu": {"cpuGuarantee": 1, "cpuLimit": 2, "memGuarantee": "1G"}}) == [
        "gpu-jupyterhub:profiles.cpu.memLimit: required key is missing (Memory limit, e.g. 8G.)"
    ]
    assert problems(drop=("kubeContext",)) == [
        "gpu-jupyterhub:kubeContext: required key is missing "
        "(kubeconfig context of the target cluster (never the ambient one).)"
    ]


def test_a_missing_secret_says_how_to_set_it() -> None:
    assert problems(drop=("auth.oidc.clientSecret",)) == [
        "gpu-jupyterhub:auth.oidc.clientSecret: required secret is missing; set it with: "
        "pulumi config set --secret --path 'gpu-jupyterhub:auth.oidc.clientSecret' <value>"
    ]


def test_a_wrong_value_is_quoted_unless_secret_or_not_a_scalar() -> None:
    assert problems({"hub.namedServerLimitPerUser": "x"}) == [
        "gpu-jupyterhub:hub.namedServerLimitPerUser: Input should be a valid integer, unable to parse string as an "
        "integer (got 'x')"
    ]
    assert problems({"namespace": "Bad_NS"}) == [
        "gpu-jupyterhub:namespace: a DNS label: lower-case letters, digits and '-', at most 63 characters "
        "(got 'Bad_NS')"
    ]
    assert problems({"hub.host": {"a": 1}}) == ["gpu-jupyterhub:hub.host: Input should be a valid string"]
    # keys below a plain dict or list have no model of their own: still quoted
    assert problems({"images.refs": {**GIVEN_REFS, "x": 1}}) == [
        "gpu-jupyterhub:images.refs.x: Input should be a valid string (got 1)"
    ]
    assert problems({"profiles.gpuTolerations": [{"key": "a", "value": 5}]}) == [
        "gpu-jupyterhub:profiles.gpuTolerations.0.value: Input should be a valid string (got 5)"
    ]
    for key in ("registry.password", "auth.oidc.clientSecret", "kubeconfig"):
        assert problems({key: 12345}) == [
            f"gpu-jupyterhub:{key}: Input should be a valid string (the value is a secret and not shown)"
        ]


def test_a_rule_across_keys_is_reported_for_the_namespace() -> None:
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": True}}
    raw["registry"] = {"host": "harbor.lab.example"}
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert err.value.problems == [
        "gpu-jupyterhub: images.build is true, so registry.username and registry.password (the push robot "
        "account) are needed; set the token with: pulumi config set --secret --path 'gpu-jupyterhub:registry.password'"
    ]


def test_the_error_lists_every_problem_once_sorted() -> None:
    err = ConfigError(["b: second", "a: first", "b: second"])
    assert err.problems == ["a: first", "b: second"]
    assert err.args == ("a: first\nb: second",)
    assert str(err) == "invalid stack configuration (2 problem(s)):\n  - a: first\n  - b: second"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("storage.scratchSize", "lots", "a Kubernetes quantity with a unit, for example 100Gi, 512Mi or 8G"),
        (
            "storage.scratchSize",
            "5",
            "a Kubernetes quantity with a unit, for example 100Gi, 512Mi or 8G (a bare number is bytes)",
        ),
        ("storage.path", "buckets/x", "an absolute path such as /buckets/jupyterhub, without '..' or '//'"),
        ("storage.path", "/a/../b", "an absolute path such as /buckets/jupyterhub, without '..' or '//'"),
        ("storage.path", "/a/..", "an absolute path such as /buckets/jupyterhub, without '..' or '//'"),
        ("storage.path", "/a//b", "an absolute path such as /buckets/jupyterhub, without '..' or '//'"),
        (
            "backup.schedule",
            "17 3 * *",
            "a five-field cron schedule (minute hour day-of-month month day-of-week), e.g. '17 3 * * *'",
        ),
        (
            "backup.schedule",
            "17 3 * * mon",
            "a five-field cron schedule (minute hour day-of-month month day-of-week), e.g. '17 3 * * *'",
        ),
    ],
)
def test_value_checks_name_the_key_the_rule_and_the_value(key: str, value: str, message: str) -> None:
    assert problems({key: value}) == [f"gpu-jupyterhub:{key}: {message} (got {value!r})"]


def test_paths_and_schedules_that_pass() -> None:
    raw = {
        **copy.deepcopy(BASE_CONFIG),
        "images": {"build": False, "refs": dict(GIVEN_REFS)},
        "storage": {"path": "/buckets/a..b/c.", "sharedCode": {"hostPath": "/srv/code/"}},
        "backup": {"schedule": "*/15 1-5 * 1,6 0"},
    }
    cfg = parse_config(raw)
    assert cfg.storage.path == "/buckets/a..b/c." and cfg.backup.schedule == "*/15 1-5 * 1,6 0"


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("512", 512),
        ("1.5", 1.5),
        ("1500m", 1.5),
        ("2k", 2000),
        ("1K", 1024),
        ("1Ki", 1024),
        ("2M", 2 * 1024**2),
        ("2Mi", 2 * 1024**2),
        ("1.5G", 1.5 * 1024**3),
        ("1Gi", 1024**3),
        ("1T", 1024**4),
        ("1Ti", 1024**4),
        ("1P", 1024**5),
        ("1Pi", 1024**5),
        ("1E", 1024**6),
        ("1Ei", 1024**6),
        ("lots", math.inf),
        ("1Gb", math.inf),
        ("1ki", math.inf),
    ],
)
def test_memory_is_compared_in_bytes_with_kubespawners_1024_based_units(quantity: str, expected: float) -> None:
    """The memGuarantee <= memLimit check compares these (KubeSpawner reads K, M, G, T as powers of 1024)."""
    assert _bytes(quantity) == expected


def test_guarantee_above_limit_across_units() -> None:
    cpu = {"cpuGuarantee": 1, "cpuLimit": 2}
    assert problems({"profiles.cpu": {**cpu, "memGuarantee": "1025M", "memLimit": "1G"}}) == [
        "gpu-jupyterhub:profiles.cpu: memGuarantee (1025M) is above memLimit (1G)"
    ]
    ok = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    ok["profiles"] = {"cpu": {**cpu, "memGuarantee": "1024Mi", "memLimit": "1G"}}
    assert parse_config(ok).profiles.cpu.memLimit == "1G"


@pytest.mark.parametrize(
    ("patch", "key", "minimum"),
    [
        ({"auth": {"mode": "native", "adminUsers": ["root"]}}, "adminPassword", 12),
        ({"backup": {"enabled": True, "target": "claim:backups", "image": "r/p/restic@sha256:" + "0" * 64}}, None, 16),
    ],
)
def test_secrets_of_exactly_the_minimum_length_are_enough(patch: dict[str, Any], key: str | None, minimum: int) -> None:
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}, **patch}
    section = raw["auth"] if key else raw["backup"]
    section[key or "password"] = "x" * minimum
    parse_config(raw)
    section[key or "password"] = "x" * (minimum - 1)
    with pytest.raises(ConfigError, match="at least"):
        parse_config(raw)


def stack_file(**config: Any) -> dict[str, Any]:
    keys = {
        "kubeContext": "homelab",
        "hub": {"host": "jupyter.lab.example", "tls": {"clusterIssuer": "lab-ca"}},
        "auth": {"mode": "oidc", "oidc": {"issuer": "https://id.lab.example/realms/lab", "clientId": "jupyterhub"}},
        "registry": {"host": "harbor.lab.example", "username": "robot"},
        **config,
    }
    return {"config": {f"{NAMESPACE}:{k}": v for k, v in keys.items()}}


def test_a_stack_file_hides_encrypted_values_and_fills_only_required_or_implied_secrets() -> None:
    cfg = load_stack_file(stack_file(kubeContext="homelab"))
    assert cfg.auth.oidc is not None
    assert cfg.auth.oidc.clientSecret.get_secret_value() == SECRET_PLACEHOLDER, "required: a placeholder"
    assert cfg.registry.password is not None and cfg.registry.password.get_secret_value() == SECRET_PLACEHOLDER
    assert cfg.kubeconfig is None and cfg.registry.pullPassword is None, "optional secrets stay unset"
    plain = load_stack_file(stack_file(registry={"host": "harbor.lab.example", "username": "r", "password": "tok"}))
    assert plain.registry.password is not None and plain.registry.password.get_secret_value() == "tok"
    secure = load_stack_file(stack_file(kubeconfig={"secure": "v1:abc"}))
    assert secure.kubeconfig is not None and secure.kubeconfig.get_secret_value() == SECRET_PLACEHOLDER
    # a value that only looks like JSON is kept as written (Pulumi's flat config map decodes; a stack file does not)
    assert load_stack_file(stack_file(kubeContext='["lab"]')).kubeContext == '["lab"]'


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (["config"], "stack file: top level must be a mapping with a `config:` key"),
        ({"config": ["gpu-jupyterhub:hub"]}, "stack file: `config:` must be a mapping of namespace:key to value"),
    ],
)
def test_a_stack_file_that_is_not_a_mapping(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_stack_file(document)
    assert err.value.problems == [message]


def test_the_secret_placeholder_is_never_judged_too_short() -> None:
    raw = {**copy.deepcopy(BASE_CONFIG), "images": {"build": False, "refs": dict(GIVEN_REFS)}}
    raw["auth"] = {"mode": "native", "adminUsers": ["root"], "adminPassword": SECRET_PLACEHOLDER}
    assert StackConfig.model_validate(raw).auth.mode == "native"
    assert SECRETS["client"] not in str(problems({"auth.oidc.clientSecret": 5}))


def test_a_stack_file_keeps_a_required_secret_written_in_plain_text_and_reports_missing_keys() -> None:
    oidc = {"issuer": "https://id.lab.example/realms/lab", "clientId": "jupyterhub", "clientSecret": "plain-7"}
    cfg = load_stack_file(stack_file(auth={"mode": "oidc", "oidc": oidc}))
    assert cfg.auth.oidc is not None and cfg.auth.oidc.clientSecret.get_secret_value() == "plain-7"
    document = stack_file()
    del document["config"][f"{NAMESPACE}:hub"]
    with pytest.raises(ConfigError) as err:
        load_stack_file(document)
    assert err.value.problems == ["gpu-jupyterhub:hub: required key is missing (Host, TLS and hub behaviour.)"]


def test_namespace_keys_from_pulumis_flat_config_map() -> None:
    flat = {
        "gpu-jupyterhub:kubeContext": "lab",
        "gpu-jupyterhub:config:namespace": "hub",
        "gpu-jupyterhub:hub": '{"host": "j.lab.example"}',
        "gpu-jupyterhub:profiles": '["not", "an", "object"]',
        "gpu-jupyterhub:broken": "{not json",
        "gpu-jupyterhub:count": 3,
        "other:kubeContext": "elsewhere",
        "gpu-jupyterhubx:key": "no",
    }
    assert namespace_keys(flat, decode_json=True) == {
        "kubeContext": "lab",
        "namespace": "hub",
        "hub": {"host": "j.lab.example"},
        "profiles": ["not", "an", "object"],
        "broken": "{not json",
        "count": 3,
    }
    kept = namespace_keys(flat, decode_json=False)
    assert kept["hub"] == '{"host": "j.lab.example"}' and kept["profiles"] == '["not", "an", "object"]'


def test_every_key_is_described_in_the_reference() -> None:
    from components.core.config_load import reference_rows

    undescribed = [key for key, _type, _default, description in reference_rows() if not description]
    assert undescribed == []
