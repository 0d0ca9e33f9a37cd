"""PicNix topics, created explicitly with their configs.

Auto-created topics would get one partition and the broker's 1 MiB record cap, which silently
breaks inline image uploads; so every topic the pipeline relies on is declared here. Faust still
creates its own changelog and repartition topics (compacted, with its own configs).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from infra.settings import Settings
from infra.stack.process import StackError, run_async

log = logging.getLogger(__name__)

MIB = 1024 * 1024
FEATURES_MAX_BYTES = 2 * MIB
_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True)
class TopicSpec:
    """A topic the pipeline needs, with the configs it must have."""

    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every explicit PicNix topic; exposed so tests and tools check the same values."""
    upload_bytes = str(settings.max_record_bytes)
    return [
        # The upload log is the source of truth (everything else is rebuilt from it): keep it.
        TopicSpec(
            settings.topic_uploads,
            settings.uploads_partitions,
            {"max.message.bytes": upload_bytes, "retention.ms": "-1"},
        ),
        TopicSpec(settings.topic_uploads_dlq, 1, {"max.message.bytes": upload_bytes}),
        # Partitioned: `match` runs on every worker holding one of them.
        TopicSpec(
            settings.topic_features,
            settings.features_partitions,
            {"max.message.bytes": str(FEATURES_MAX_BYTES)},
        ),
        # One partition: `commit` decides every upload in one fixed order (DESIGN.md).
        TopicSpec(settings.topic_matches, 1, {"max.message.bytes": str(FEATURES_MAX_BYTES)}),
        TopicSpec(settings.topic_decisions, 1),
        # What every replica is built from: compacted to the live entries (and removals), kept.
        TopicSpec(
            settings.topic_index,
            1,
            {
                "max.message.bytes": str(FEATURES_MAX_BYTES),
                "cleanup.policy": "compact",
                "retention.ms": "-1",
            },
        ),
        TopicSpec(settings.topic_alerts, 1),
    ]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create missing topics and fix drifted configs; idempotent. Returns the created names.

    An existing topic keeps its partitions (more partitions would re-route keys); a partition
    count below the wanted one is logged, not changed.
    """
    return run_async(lambda: _ensure_topics(settings, topic_specs(settings), timeout))


async def _ensure_topics(settings: Settings, specs: list[TopicSpec], timeout: float) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, settings.topic_replication,
                             topic_configs=dict(s.configs))
                    for s in missing
                ],
                timeout_ms=int(timeout * 1000),
            )
            for name, code, message in _topic_errors(response):
                if code == 0:
                    created.append(name)
                elif code != _TOPIC_ALREADY_EXISTS:
                    raise StackError(f"creating topic {name} failed: error {code}: {message}")
        present = [s for s in specs if s.name in existing]
        if present:
            await _reconcile(admin, present)
        return created
    except (TimeoutError, OSError) as exc:
        raise StackError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} to create topics: {exc!r}"
        ) from exc
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    """(topic, error_code, message) from any CreateTopicsResponse version."""
    entries = getattr(response, "topic_errors", None) or getattr(response, "topics", [])
    out = []
    for entry in entries:
        if isinstance(entry, dict):
            out.append((entry["topic"], int(entry["error_code"]), entry.get("error_message")))
        else:
            message = entry[2] if len(entry) > 2 else None
            out.append((str(entry[0]), int(entry[1]), message))
    return out


async def _reconcile(admin: object, specs: list[TopicSpec]) -> None:
    """Align configs of existing topics with their spec (only when they differ)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    actual = await describe_topic_configs_with(admin, [s.name for s in specs])
    drifted = [s for s in specs if any(actual[s.name].get(k) != v for k, v in s.configs.items())]
    for spec in drifted:
        log.warning("topic %s configs differ from spec; setting %s", spec.name, spec.configs)
    if drifted:
        # AlterConfigs (non-incremental) replaces a topic's dynamic configs with this set:
        # fine here, since the spec is the complete set we own.
        responses = await admin.alter_configs(  # type: ignore[attr-defined]
            [ConfigResource(ConfigResourceType.TOPIC, s.name, dict(s.configs)) for s in drifted]
        )
        for response in responses if isinstance(responses, list) else [responses]:
            for resource in getattr(response, "resources", []):
                if resource[0] != 0:
                    raise StackError(f"altering configs of {resource[3]} failed: {resource[1]}")
    described = await admin.describe_topics([s.name for s in specs])  # type: ignore[attr-defined]
    for spec, info in zip(specs, described, strict=False):
        count = len(info.get("partitions", [])) if isinstance(info, dict) else spec.partitions
        if count < spec.partitions:
            log.warning(
                "topic %s has %d partitions, settings want %d; not changed (keys would move)",
                spec.name,
                count,
                spec.partitions,
            )


async def describe_topic_configs_with(admin: object, names: list[str]) -> dict[str, dict[str, str]]:
    """Current config values of ``names`` through an already-started admin client."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    responses = await admin.describe_configs(  # type: ignore[attr-defined]
        [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    )
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    for response in responses:
        for resource in response.resources:
            error_code, error_message, _rtype, name, entries = resource[:5]
            if error_code != 0:
                raise StackError(f"describing configs of {name} failed: {error_message}")
            out[name] = {str(e[0]): str(e[1]) for e in entries}
    return out


def describe_topic_configs(settings: Settings, names: list[str]) -> dict[str, dict[str, str]]:
    """Current config values of the named topics (used by tests and ``stack status``)."""

    async def run() -> dict[str, dict[str, str]]:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            await asyncio.wait_for(admin.start(), 15)
            return await describe_topic_configs_with(admin, names)
        finally:
            await admin.close()

    return run_async(run)
