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
    user_image_pulls,
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


def test_profiles_from_plan_values_expand_image_choices() -> None:
    """The shape `python -m components.cli.plan --output json` prints: null GPU limits on CPU profiles,
    image choices as profile options, GPU counts as a `gpus` option on per-node-class profiles."""
    image_option = {
        "choices": {
            "jupyter-ml-gpu": {"kubespawner_override": {"image": "reg/jupyter-ml-gpu@sha256:1"}},
            "jupyter-fine-tuning": {"kubespawner_override": {"image": "reg/jupyter-fine-tuning@sha256:2"}},
        },
        "unlisted_choice": {"enabled": True, "kubespawner_override": {"image": "{value}"}},
    }
    values = {
        "singleuser": {
            "profileList": [
                {
                    "slug": "agent-dev",
                    "kubespawner_override": {
                        "extra_resource_limits": {"nvidia.com/gpu": None},
                        "image": "reg/jupyter-agent-dev@sha256:3",
                    },
                },
                {
                    "slug": "gpu",
                    "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
                    "profile_options": {"image": image_option},
                },
                {
                    "slug": "gpu-rtx-4090",
                    "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": None}},
                    "profile_options": {"gpus": {"choices": {"1": {}}}, "image": image_option},
                    "user_options": {"node": "ws-1", "image": "jupyter-ml-gpu"},
                },
            ]
        }
    }
    agent, gpu_ml, gpu_ft, pinned = parse_profiles(json.dumps(values))
    assert agent == Profile("agent-dev", False, {}, "reg/jupyter-agent-dev@sha256:3")
    assert (gpu_ml.label, gpu_ml.gpu, gpu_ml.image) == ("gpu-jupyter-ml-gpu", True, "reg/jupyter-ml-gpu@sha256:1")
    assert gpu_ml.options() == {"profile": "gpu", "image": "jupyter-ml-gpu"}
    assert gpu_ft.label == "gpu-jupyter-fine-tuning"
    # a chosen image is not expanded again; extra option keys (node selection) are passed through
    assert (pinned.label, pinned.gpu) == ("gpu-rtx-4090", True)
    assert pinned.options() == {"profile": "gpu-rtx-4090", "node": "ws-1", "image": "jupyter-ml-gpu"}


@pytest.mark.parametrize(("text", "seconds"), [("850ms", 0.85), ("12.5s", 12.5), ("1m2.5s", 62.5), ("1h0m1s", 3601.0)])
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


def test_only_the_profiles_images_count_as_user_image_pulls() -> None:
    pulls = {"reg/jupyter-ml-gpu@sha256:1": 64.2, "hub-image/k8s-hub:4.4.0": 20.0}
    profiles = [Profile("gpu", True, image="reg/jupyter-ml-gpu@sha256:1"), Profile("cpu")]
    assert user_image_pulls(pulls, profiles) == {"reg/jupyter-ml-gpu@sha256:1": 64.2}
    assert user_image_pulls(pulls, [Profile("cpu")]) == pulls  # images unknown: report every pull
