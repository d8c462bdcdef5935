"""The z2jh chart's own images, and where a stack takes them from (``gpu-jupyterhub:chart.images``).

A cluster without internet cannot pull from quay.io, registry.k8s.io or Docker Hub. With
``chart.images.registry`` every image the chart's values name comes from the user's mirror instead, under its
last path component and the chart's own tag; ``chart.images.hub`` and ``chart.images.proxy`` pin those two
by digest. The Release's values (``components/core/values.py``) and the plan's table both come from
``chart_image_refs``, so the plan shows what ``pulumi up`` deploys.
"""

from __future__ import annotations

from typing import Any

# The chart version the table below describes.
CHART_VERSION = "4.4.0"
# Every image the z2jh 4.4.0 chart's values.yaml names, by values path, with its default (name, tag); all but
# singleuser.image, the users' image, which is ours. tests/test_chart_images.py compares it with the chart on
# disk, so a chart bump that adds, renames or re-tags an image fails there.
CHART_IMAGES: dict[str, tuple[str, str]] = {
    "hub.image": ("quay.io/jupyterhub/k8s-hub", "4.4.0"),
    "proxy.chp.image": ("quay.io/jupyterhub/configurable-http-proxy", "5.2.0"),
    "proxy.traefik.image": ("traefik", "v3.6.12"),
    "proxy.secretSync.image": ("quay.io/jupyterhub/k8s-secret-sync", "4.4.0"),
    "singleuser.networkTools.image": ("quay.io/jupyterhub/k8s-network-tools", "4.4.0"),
    "scheduling.userScheduler.image": ("registry.k8s.io/kube-scheduler", "v1.30.14"),
    "scheduling.userPlaceholder.image": ("registry.k8s.io/pause", "3.10.1"),
    "prePuller.hook.image": ("quay.io/jupyterhub/k8s-image-awaiter", "4.4.0"),
    "prePuller.pause.image": ("registry.k8s.io/pause", "3.10.1"),
}
HUB_IMAGE, PROXY_IMAGE = "hub.image", "proxy.chp.image"


def chart_image_refs(registry: str | None, hub: str | None, proxy: str | None) -> dict[str, str]:
    """The reference each chart image is pulled by (values path -> reference), in the table's order.

    ``registry``: a mirror prefix (host[:port][/path]); each image becomes ``<registry>/<last component>:<tag>``
    with the chart's tag (``registry.k8s.io/pause:3.10.1`` -> ``<registry>/pause:3.10.1``). ``hub`` and
    ``proxy``: digest-pinned references that win over the prefix. Nothing set: the chart's defaults.
    """
    refs = {}
    for path, (name, tag) in CHART_IMAGES.items():
        repository = f"{registry}/{name.rsplit('/', 1)[-1]}" if registry else name
        refs[path] = f"{repository}:{tag}"
    for path, explicit in ((HUB_IMAGE, hub), (PROXY_IMAGE, proxy)):
        if explicit:
            refs[path] = explicit
    return refs


def image_value(ref: str) -> dict[str, str]:
    """``{name, tag}`` for a chart ``*.image`` value, split so the chart renders ``ref`` back.

    Every template of the chart writes a container image as ``{{ .image.name }}:{{ .image.tag }}`` (hub,
    proxy, traefik and secret-sync, user-scheduler, user-placeholder, the pre-pullers, and the hub's own
    jupyterhub_config.py for network-tools), so the split is at the last ``:``: a tag reference
    ``host/p/k8s-hub:4.4.0`` gives name ``host/p/k8s-hub``, tag ``4.4.0``; a digest reference
    ``host/p/k8s-hub@sha256:<hex>`` gives name ``host/p/k8s-hub@sha256``, tag ``<hex>``, which renders
    ``host/p/k8s-hub@sha256:<hex>``. (An empty tag would render a trailing ``:``, which no runtime pulls.)
    ``ref`` always carries a tag or a digest here, so that last ``:`` is never a registry port.
    """
    name, _, tag = ref.rpartition(":")
    return {"name": name, "tag": tag}


def chart_image_values(refs: dict[str, str]) -> dict[str, Any]:
    """Nested Helm values for the chart images whose reference differs from the chart's default (empty
    when nothing does, so a stack without ``chart.images`` gives the values it always gave)."""
    values: dict[str, Any] = {}
    for path, ref in refs.items():
        name, tag = CHART_IMAGES[path]
        if ref == f"{name}:{tag}":
            continue
        *parents, leaf = path.split(".")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = image_value(ref)
    return values
