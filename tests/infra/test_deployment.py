"""Deployment material that cannot run here (no Docker, no Kubernetes) is validated instead:
every file parses; our processes get only environment variables the settings know, with
valid values; services, ports, images, mounts and datasource uids agree with each other
and with the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import yaml

from schemas.settings import ALIASES, ENV_PREFIX, Settings, load_settings
from streams.cli import cli

ROOT = Path(__file__).parents[2]
INFRA = ROOT / "infra"
PROVISIONING = ROOT / "dashboards" / "provisioning"
#: commands the manifests run that another issue adds (issue 3: the collectors)
PENDING_COMMANDS = {"collect"}
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def _k8s() -> list[dict[str, Any]]:
    """The resources kustomization.yaml lists (every other .yaml there must be listed)."""
    folder = INFRA / "k8s"
    resources = yaml.safe_load((folder / "kustomization.yaml").read_text())["resources"]
    assert set(resources) == {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    docs = []
    for name in resources:
        docs.extend(d for d in yaml.safe_load_all((folder / name).read_text()) if d)
    return docs


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with the default (nothing else is set here)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def _settings_from(env: dict[str, str]) -> Settings:
    """The settings a process gets from `env`; refuses a name the settings do not know."""
    for name in env:
        assert name in ALIASES or name.startswith(ENV_PREFIX), f"{name} is not a setting"
    return load_settings(environ=env)  # raises SettingsError on unknown names or bad values


def _port_of(ports: list[str]) -> set[int]:
    return {int(p.rsplit(":", 1)[-1]) for p in ports}


def test_compose_services_get_valid_settings_and_agree() -> None:
    compose = _compose()
    services = compose["services"]
    ours = {n: s for n, s in services.items() if s.get("image", "").startswith("carbon-accounts:")}
    assert set(ours) == {"collector", "worker", "sink"}
    for service in ours.values():
        env = {k: _interpolate(str(v)) for k, v in service["environment"].items()}
        settings = _settings_from(env)
        assert service["image"] == f"carbon-accounts:{PROJECT_VERSION}"
        # Kafka: the broker's internal listener
        assert settings.kafka.bootstrap_servers == "kafka:9092"
        assert (
            "PLAINTEXT://kafka:9092"
            in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
        )
        # ClickHouse: the server's HTTP port, its user and password
        url = urlparse(settings.clickhouse.url or "")
        ch_env = {k: _interpolate(str(v)) for k, v in services["clickhouse"]["environment"].items()}
        assert (url.hostname, url.port) == ("clickhouse", 8123)
        assert (url.username, url.password) == (
            ch_env["CLICKHOUSE_USER"],
            ch_env["CLICKHOUSE_PASSWORD"],
        )
        assert 8123 in _port_of(services["clickhouse"]["ports"])
        assert settings.clickhouse.database == ch_env["CLICKHOUSE_DB"]
        # metrics reachable from the Prometheus container
        assert settings.metrics.host == "0.0.0.0"
        assert settings.kafka.replication_factor == 1  # one broker
        if "--agents" in service["command"]:  # a subset of agents: a consumer group of its own
            assert settings.streams.app_id != Settings().streams.app_id
        _check_command(service["command"])
    # Prometheus scrapes each of our services by name on the metrics port
    prom = yaml.safe_load((INFRA / "prometheus" / "prometheus.yml").read_text())
    sd = {
        job["job_name"]: job["dns_sd_configs"][0]
        for job in prom["scrape_configs"]
        if "dns_sd_configs" in job
    }
    assert {c["names"][0] for c in sd.values()} == set(ours)
    assert {c["port"] for c in sd.values()} == {9464}
    assert _jobs_alerted_on(set(sd)) == set(sd)  # a process down raises an alert
    # mounted folders exist
    for service in services.values():
        for volume in service.get("volumes", []):
            source = _interpolate(volume.split(":")[0])
            if source.startswith("."):
                if "devices.yaml" in source:
                    continue  # the user's device map
                assert (INFRA / source).exists(), volume


def test_every_image_is_pinned() -> None:
    for name, service in _compose()["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"
    # Grafana runs the version the dashboards are built for (grafana-foundation-sdk)
    grafana_tag = _compose()["services"]["grafana"]["image"].split(":")[1]
    sdk_grafana = version("grafana-foundation-sdk").split("!")[-1]
    assert grafana_tag.rsplit(".", 1)[0] == sdk_grafana.rsplit(".", 1)[0]
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "carbon-accounts", "newTag": PROJECT_VERSION}]


def _check_command(args: list[str]) -> None:
    name, rest = args[0], args[1:]
    if name in PENDING_COMMANDS and name not in cli.commands:
        return
    assert name in cli.commands, f"no command {name!r} in carbon-accounts"
    command = cli.commands[name]
    # the options parse (values such as agent names are checked when the command runs)
    command.make_context(name, list(rest), parent=click.Context(cli))


def test_grafana_provisioning_matches_compose_and_dashboards() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    env = grafana["environment"]
    text = (PROVISIONING / "datasources" / "carbon-accounts.yaml").read_text()
    datasources = yaml.safe_load(text)["datasources"]
    # every ${VAR} the provisioning reads is set on the Grafana service
    code = "\n".join(line.split("#")[0] for line in text.splitlines())
    assert set(re.findall(r"\$\{(\w+)\}", code)) <= set(env)
    by_uid = {d["uid"]: d for d in datasources}
    assert by_uid["clickhouse"]["type"] == "grafana-clickhouse-datasource"
    assert "grafana-clickhouse-datasource" in env["GF_INSTALL_PLUGINS"]
    assert by_uid["clickhouse"]["jsonData"]["port"] in _port_of(services["clickhouse"]["ports"])
    assert urlparse(env["PROMETHEUS_URL"]).port in _port_of(services["prometheus"]["ports"])
    # the dashboards use exactly these datasources
    used = set()
    for path in (ROOT / "dashboards" / "json").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            if "datasource" in panel:
                used.add((panel["datasource"]["type"], panel["datasource"]["uid"]))
    assert used == {(d["type"], d["uid"]) for d in datasources}
    # the dashboard provider reads the folder compose mounts dashboards/json on
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "carbon-accounts.yaml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"../dashboards/json:{path}:ro" in grafana["volumes"]
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(path + "/")
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).name
    assert (ROOT / "dashboards" / "json" / home).exists()


def test_kubernetes_manifests_parse_and_agree() -> None:
    docs = _k8s()
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    secret = next(d for d in docs if d["kind"] == "Secret")
    env = {**config["data"], **secret["stringData"]}
    settings = _settings_from({k: str(v) for k, v in env.items()})
    assert settings.metrics.host == "0.0.0.0"
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    assert {d["metadata"]["name"] for d in workloads} == {"collectors", "workers", "sinks"}
    for w in workloads:
        spec = w["spec"]
        pod = spec["template"]
        assert spec["selector"]["matchLabels"] == pod["metadata"]["labels"]
        component = pod["metadata"]["labels"]["app.kubernetes.io/component"]
        assert component == w["metadata"]["name"]  # job carbon-accounts-<component>
        if w["metadata"]["name"] != "collectors":
            # partitions decide parallelism: more replicas than partitions would idle
            assert spec["replicas"] <= settings.kafka.partitions
        (container,) = pod["spec"]["containers"]
        assert container["image"] == "carbon-accounts"
        port = container["ports"][0]["containerPort"]
        assert (
            port
            == settings.metrics.port
            == int(pod["metadata"]["annotations"]["prometheus.io/port"])
        )
        for source in container["envFrom"]:
            ref = source.get("configMapRef") or source.get("secretRef")
            kind = "ConfigMap" if "configMapRef" in source else "Secret"
            assert (kind, ref["name"]) in kinds
        # variables of the container itself: settings, or what its args use ($(POD_NAME))
        own = {e["name"]: e.get("value", "x") for e in container.get("env", [])}
        used = set(re.findall(r"\$\((\w+)\)", " ".join(container["args"])))
        assert used <= set(own)
        _settings_from({k: v for k, v in own.items() if k not in used})
        if "--agents" in container["args"]:  # a subset of agents: a consumer group of its own
            assert own["CARBON_ACCOUNTS_STREAMS_APP_ID"] != settings.streams.app_id
        _check_command(container["args"])
        # a volume's ConfigMap or Secret is in the manifests, optional, or its header says
        # how to create it
        header = (INFRA / "k8s" / f"{w['metadata']['name']}.yaml").read_text()
        for volume in pod["spec"].get("volumes", []):
            for kind, key in (("ConfigMap", "configMap"), ("Secret", "secret")):
                if key in volume:
                    ref = volume[key].get("name") or volume[key].get("secretName")
                    assert (
                        (kind, ref) in kinds
                        or volume[key].get("optional")
                        or f"create {kind.lower()} {ref}" in header
                    ), f"{w['metadata']['name']}: {kind} {ref} is nowhere"
    # the alert rules' job names are what the scrape config makes of the components
    jobs = {f"carbon-accounts-{w['metadata']['name']}" for w in workloads}
    assert _jobs_alerted_on(jobs) == jobs


def _jobs_alerted_on(jobs: set[str]) -> set[str]:
    """The jobs of `jobs` some `up{job...}` matcher of the alert rules selects."""
    alerts = (INFRA / "prometheus" / "alerts.yml").read_text()
    matchers = re.findall(r'job(=~?)"([^"]+)"', alerts)
    return {
        job
        for job in jobs
        for op, value in matchers
        if (re.fullmatch(value, job) if op == "=~" else value == job)
    }


def test_kubernetes_scrape_config_checks(tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed")
    source = INFRA / "k8s" / "prometheus-scrape.yml"
    config = yaml.safe_load(source.read_text())
    config["rule_files"] = [str((source.parent / r).resolve()) for r in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True)
    if "kubernetes_sd_configs not found" in out.stdout + out.stderr:
        # Debian builds Prometheus without Kubernetes discovery: check the rest of the
        # config (relabelling, rules) with the discovery swapped for a static target
        for job in config["scrape_configs"]:
            job.pop("kubernetes_sd_configs")
            job["static_configs"] = [{"targets": ["pod:9464"]}]
        path.write_text(yaml.safe_dump(config))
        out = subprocess.run(
            ["promtool", "check", "config", str(path)], capture_output=True, text=True
        )
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_sets_only_known_settings() -> None:
    text = (INFRA / "Dockerfile").read_text()
    env = dict(re.findall(r"(CARBON_ACCOUNTS_\w+)=(\S+)", text))
    settings = _settings_from(env)
    assert f"EXPOSE {settings.metrics.port}" in text
    for folder in re.findall(r"^COPY (\w+) \1$", text, flags=re.M):
        assert (ROOT / folder).is_dir()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        assert f"COPY {pattern.rstrip('*')} " in text  # every package is in the image
