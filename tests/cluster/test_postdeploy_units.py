"""Pure parts of the post-deploy check: settings, profile lists, kubelet durations and pull events."""

from __future__ import annotations

import json

import pytest
from postdeploy import (
    Profile,
    Report,
    Row,
    Settings,
    image_pulls_from_events,
    parse_go_duration,
    parse_profiles,
)


def test_no_cluster_configured_means_no_settings() -> None:
    assert Settings.from_env({}) is None
    assert Settings.from_env({"GPU_JUPYTERHUB_HUB_URL": "https://hub.test/"}) is None


def test_settings_from_env(tmp_path) -> None:
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps([{"slug": "gpu", "gpu": True, "user_options": {"node": "n1"}}]))
    env = {
        "GPU_JUPYTERHUB_HUB_URL": "https://hub.test/",
        "GPU_JUPYTERHUB_HUB_TOKEN": "t",
        "GPU_JUPYTERHUB_PROFILES_FILE": str(profiles),
        "GPU_JUPYTERHUB_NAMED_SERVERS": "1",
        "GPU_JUPYTERHUB_TLS_VERIFY": "0",
    }
    settings = Settings.from_env(env)
    assert settings is not None
    assert settings.profiles == [Profile("gpu", True, {"node": "n1"})]
    assert settings.profiles[0].options() == {"profile": "gpu", "node": "n1"}
    assert settings.named_servers is True and settings.verify is False
    assert settings.namespace == "jupyterhub"


def test_profiles_from_slugs_and_from_kubespawner_profile_list() -> None:
    assert parse_profiles("cpu, ml-gpu:gpu ,") == [Profile("cpu"), Profile("ml-gpu", gpu=True)]
    profile_list = [
        {
            "display_name": "CPU",
            "slug": "cpu",
            "kubespawner_override": {"image": "reg/jupyter-ml-cpu@sha256:ab"},
        },
        {
            "display_name": "GPU",
            "slug": "gpu",
            "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
        },
    ]
    cpu, gpu = parse_profiles(json.dumps(profile_list))
    assert (cpu.gpu, cpu.image) == (False, "reg/jupyter-ml-cpu@sha256:ab")
    assert gpu.gpu is True


@pytest.mark.parametrize(
    ("text", "seconds"), [("850ms", 0.85), ("12.5s", 12.5), ("1m2.5s", 62.5), ("1h0m1s", 3601.0)]
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


def test_bad_go_duration() -> None:
    with pytest.raises(ValueError):
        parse_go_duration("12 seconds")


def test_image_pulls_from_kubelet_events() -> None:
    events = {
        "items": [
            {"reason": "Pulling", "message": 'Pulling image "reg/gpu@sha256:1"'},
            {
                "reason": "Pulled",
                "message": 'Successfully pulled image "reg/gpu@sha256:1" in 1m4.2s '
                "(1m4.2s including waiting). "
                "Image size: 9 bytes.",
            },
            {"reason": "Pulled", "message": 'Successfully pulled image "reg/gpu@sha256:1" in 3.1s'},
            {"reason": "Pulled", "message": 'Container image "reg/cpu@sha256:2" already present on machine'},
        ]
    }
    assert image_pulls_from_events(events) == {"reg/gpu@sha256:1": pytest.approx(64.2)}


def test_table_lines_up() -> None:
    report = Report(
        [], [Row("pod start [cpu]", "< 30 s", "4.2 s", True), Row("image pull", "< 120 s", "n/a", None)], []
    )
    lines = report.table().splitlines()
    assert lines[0].startswith("measure") and set(lines[1]) <= {"-", "+"}
    assert "| OK" in lines[2] and "| n/a" in lines[3]
    assert len({len(line.rstrip()) for line in lines[:2]}) == 1
