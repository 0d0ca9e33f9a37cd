"""infra/compose.yml against the code it mirrors: the topics of infra/stack/topics.py, the
workers' distinct indexes and datadirs, and only real settings in its environment.

No container engine runs here: the file is parsed and compared. PyYAML is in the dev install
(schemathesis requires it); compose's anchors and ``<<`` merge keys are plain YAML to it.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import Settings
from infra.stack.topics import topic_specs

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPOSE = INFRA / "compose.yml"
DOCKERFILE = INFRA / "Dockerfile"
SETTING_NAMES = {"PICNIX_" + f.name.upper() for f in dataclasses.fields(Settings)}
PICNIX_VAR = re.compile(r"\bPICNIX_[A-Z0-9_]+")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- KEY=value` form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _topic_commands(compose: dict[str, Any]) -> dict[str, tuple[int, dict[str, str]]]:
    """{topic: (partitions, configs)} from kafka-init's `$T --topic ...` lines."""
    script = _services(compose)["kafka-init"]["command"][0]
    topics: dict[str, tuple[int, dict[str, str]]] = {}
    for line in script.splitlines():
        # `$$` is compose's escape for a literal `$`: the shell sees `$T`
        words = shlex.split(line.replace("$$", "$"))
        if not words or words[0] != "$T":
            continue
        name, partitions, configs = None, None, {}
        rest = iter(words[1:])
        for flag in rest:
            value = next(rest)
            if flag == "--topic":
                name = value
            elif flag == "--partitions":
                partitions = int(value)
            elif flag == "--config":
                key, _, config = value.partition("=")
                assert key not in configs, f"{line!r} sets {key} twice"
                configs[key] = config
            else:
                raise AssertionError(f"unexpected {flag} in {line!r}")
        assert name is not None and partitions is not None, line
        assert name not in topics, f"{name} created twice"
        topics[name] = (partitions, configs)
    return topics


def _worker_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _services(compose).items()
        if (service.get("command") or [None])[0] == "worker"
    }


def _worker_index(service: dict[str, Any]) -> int:
    command = service["command"]
    # `picnix worker` takes its index from --index (default 0), not from the environment
    assert "--index" in command, f"{command}: a worker without --index runs as worker 0"
    return int(command[command.index("--index") + 1])


def test_kafka_init_creates_exactly_the_topics_of_topic_specs(compose: dict[str, Any]) -> None:
    wanted = {s.name: (s.partitions, dict(s.configs)) for s in topic_specs(Settings())}
    assert _topic_commands(compose) == wanted


def test_kafka_init_uses_the_brokers_internal_listener(compose: dict[str, Any]) -> None:
    script = _services(compose)["kafka-init"]["command"][0]
    advertised = _environment(_services(compose)["kafka"])["KAFKA_ADVERTISED_LISTENERS"]
    assert "INTERNAL://kafka:29092" in advertised
    assert "--bootstrap-server kafka:29092" in script
    assert "--if-not-exists" in script


def test_two_workers_with_distinct_indexes_datadirs_and_addresses(
    compose: dict[str, Any],
) -> None:
    workers = _worker_services(compose)
    assert sorted(workers) == ["worker-0", "worker-1"]
    declared_volumes = set(compose.get("volumes") or {})
    indexes, volumes, web_hosts = set(), set(), set()
    for name, service in workers.items():
        env = _environment(service)
        settings = Settings.from_env(env)
        index = _worker_index(service)
        assert settings.worker_index == index, f"{name}: PICNIX_WORKER_INDEX disagrees"
        indexes.add(index)
        # its own named volume, mounted where its Faust datadir lives (under PICNIX_HOME)
        mounts = [str(v).split(":") for v in service.get("volumes") or []]
        data = [source for source, target, *_ in mounts if target == str(settings.home)]
        assert len(data) == 1, f"{name}: no volume at PICNIX_HOME {settings.home}"
        assert data[0] in declared_volumes, f"{name}: {data[0]} is not a named volume"
        volumes.add(data[0])
        web_hosts.add(settings.faust_web_host)
        # the healthcheck reads this worker's own metrics port
        assert str(settings.worker_metrics_port) in " ".join(service["healthcheck"]["test"])
    assert len(indexes) == len(workers)
    assert len(volumes) == len(workers)
    assert len(web_hosts) == len(workers)
    assert "127.0.0.1" not in web_hosts  # other containers must reach each worker's web server


def test_workers_fit_the_features_partitions(compose: dict[str, Any]) -> None:
    workers = len(_worker_services(compose))
    partitions = _topic_commands(compose)
    settings = Settings()
    assert partitions[settings.topic_features][0] >= workers
    assert partitions[settings.topic_uploads][0] >= workers


def test_search_urls_name_every_worker(compose: dict[str, Any]) -> None:
    workers = _worker_services(compose)
    expected = set()
    for service in workers.values():
        settings = dataclasses.replace(
            Settings.from_env(_environment(service)), worker_index=_worker_index(service)
        )
        expected.add(f"http://{settings.faust_web_host}:{settings.worker_web_port}")
    api = Settings.from_env(_environment(_services(compose)["api"]))
    assert set(api.search_urls) == expected


def test_every_picnix_variable_is_a_setting(compose: dict[str, Any]) -> None:
    used = set(PICNIX_VAR.findall(COMPOSE.read_text()))
    used |= set(PICNIX_VAR.findall(DOCKERFILE.read_text()))
    assert used, "compose sets no PICNIX_ variable"
    assert used <= SETTING_NAMES, f"not Settings fields: {sorted(used - SETTING_NAMES)}"
    for name, service in _services(compose).items():
        env = {k: v for k, v in _environment(service).items() if k.startswith("PICNIX_")}
        if env:
            Settings.from_env(env)  # every value converts to its field's type
        assert set(env) <= SETTING_NAMES, name


def test_picnix_services_reach_the_stack_by_service_name(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, service in services.items():
        if "picnix" not in str(service.get("image", "")):
            continue
        settings = Settings.from_env(_environment(service))
        host, _, port = settings.kafka_bootstrap.partition(":")
        assert host in services and port == "29092", name
        assert settings.pg_host in services and settings.pg_port == 5432, name
        assert settings.s3_endpoint.partition(":")[0] in services, name
        assert "pipeline" in service.get("profiles", []), name
