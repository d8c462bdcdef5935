"""Where the Helm release takes the z2jh chart from: a repository, an OCI reference or a chart on disk.

A chart on disk is checked before anything is registered (it exists, it is the jupyterhub chart, and at the
configured version), because Helm would otherwise deploy whatever chart the path holds without a word.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from components.core.config import ChartConfig, ConfigError

CHART_NAME = "jupyterhub"
_KEY = "gpu-jupyterhub:chart.path"


@dataclass(frozen=True)
class ChartSource:
    """The Release's ``chart``, ``version`` and repository (None for OCI references and charts on disk)."""

    chart: str
    version: str | None
    repository: str | None


def chart_source(cfg: ChartConfig, base_dir: Path) -> ChartSource:
    """Resolve ``cfg`` to the Release's chart inputs; a chart on disk is read and checked (ConfigError if bad)."""
    if cfg.path:
        path = Path(cfg.path)
        if not path.is_absolute():
            path = (base_dir / path).resolve()
        meta = _chart_yaml(path)
        name, version = str(meta.get("name", "")), str(meta.get("version", ""))
        if name != CHART_NAME or version != cfg.version:
            raise ConfigError(
                [
                    f"{_KEY}: {path} holds chart {name or '?'!r} version {version or '?'!r}; expected "
                    f"{CHART_NAME!r} version {cfg.version!r} (gpu-jupyterhub:chart.version)"
                ]
            )
        # Helm takes the version from the chart itself; passing it too would only be ignored.
        return ChartSource(chart=str(path), version=None, repository=None)
    if cfg.oci:
        return ChartSource(chart=cfg.oci, version=cfg.version, repository=None)
    return ChartSource(chart=CHART_NAME, version=cfg.version, repository=cfg.repository)


def _chart_yaml(path: Path) -> dict:
    try:
        if path.is_dir():
            text = (path / "Chart.yaml").read_text()
        elif path.is_file() and path.name.endswith((".tgz", ".tar.gz")):
            with tarfile.open(path, "r:gz") as tar:
                member = next(
                    (m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")), None
                )
                if member is None:
                    raise ConfigError([f"{_KEY}: {path} is not a packaged Helm chart (no <chart>/Chart.yaml inside)"])
                extracted = tar.extractfile(member)
                text = extracted.read().decode() if extracted else ""
        elif not path.exists():
            raise ConfigError([f"{_KEY}: {path} does not exist; give an unpacked chart directory or a .tgz"])
        else:
            raise ConfigError([f"{_KEY}: {path} is neither a chart directory nor a .tgz package"])
        meta = yaml.safe_load(text)
    except (OSError, tarfile.TarError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError([f"{_KEY}: cannot read the chart at {path}: {e}"]) from None
    if not isinstance(meta, dict):
        raise ConfigError([f"{_KEY}: {path}: Chart.yaml is not a mapping"])
    return meta
