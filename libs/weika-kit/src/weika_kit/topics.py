"""The Kafka topic registry (proto/topics.yaml, shipped in weika-contracts): what each topic carries and who uses it."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from weika_kit.bus import TopicSpec

EVENTS_PACKAGE = "weika.events.v1"
DEAD_LETTER_SUFFIX = ".dlq"


@dataclass(frozen=True)
class TopicInfo:
    name: str
    # Full protobuf name of the payload, e.g. "weika.events.v1.OrderPaid".
    message: str
    owner: str
    # The payload field whose value (UTF-8) is the Kafka record key.
    key: str
    partitions: int
    retention_ms: int
    producers: tuple[str, ...]
    consumers: tuple[str, ...]
    description: str
    # The payload in the protobuf JSON mapping. Shared by every caller: read it, do not change it.
    example: dict[str, Any] = field(hash=False, repr=False)

    @property
    def dead_letter_topic(self) -> str:
        return self.name + DEAD_LETTER_SUFFIX


@cache
def _document() -> dict[str, Any]:
    text = resources.files("weika.contracts").joinpath("topics.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def _registry() -> dict[str, TopicInfo]:
    topics = {}
    for entry in _document()["topics"]:
        info = TopicInfo(
            name=entry["name"],
            message=entry["message"],
            owner=entry["owner"],
            key=entry["key"],
            partitions=int(entry["partitions"]),
            retention_ms=int(entry["retention_ms"]),
            producers=tuple(entry["producers"]),
            consumers=tuple(entry["consumers"]),
            description=entry["description"],
            example=entry["example"],
        )
        if info.name in topics:
            raise ValueError(f"topic {info.name} is registered twice in topics.yaml")
        topics[info.name] = info
    return topics


@cache
def _topics_by_message() -> dict[str, TopicInfo]:
    by_message: dict[str, TopicInfo] = {}
    for info in _registry().values():
        if info.message in by_message:
            raise ValueError(
                f"{info.message} is the payload of both {by_message[info.message].name} and {info.name}"
            )
        by_message[info.message] = info
    return by_message


def load_registry() -> dict[str, TopicInfo]:
    """Every registered topic by name (a fresh dict over the cached, immutable entries)."""
    return dict(_registry())


@cache
def _import_event_modules() -> None:
    # Generated modules register their messages in the default descriptor pool when imported.
    package = importlib.import_module(EVENTS_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.endswith("_pb2"):
            importlib.import_module(f"{EVENTS_PACKAGE}.{module.name}")


def message_class(full_name: str) -> type[Message]:
    """The generated class of a protobuf message, e.g. "weika.events.v1.OrderPaid"."""
    _import_event_modules()
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        raise KeyError(f"unknown protobuf message {full_name!r}") from None
    return message_factory.GetMessageClass(descriptor)


def topic_for(message_or_class: Message | type[Message]) -> TopicInfo:
    """The topic an event message (or message class) is published to."""
    full_name = message_or_class.DESCRIPTOR.full_name
    try:
        return _topics_by_message()[full_name]
    except KeyError:
        raise KeyError(f"no topic carries {full_name}") from None


def topic_specs(partitions: int | None = None) -> list[TopicSpec]:
    """Every topic and its dead-letter twin, for EventBus.ensure_topics; `partitions` overrides the registry's."""
    dead_letter_retention_ms = int(_document()["dead_letter"]["retention_ms"])
    specs = []
    for info in _registry().values():
        count = info.partitions if partitions is None else partitions
        specs.append(TopicSpec(name=info.name, partitions=count, retention_ms=info.retention_ms))
        specs.append(
            TopicSpec(name=info.dead_letter_topic, partitions=count, retention_ms=dead_letter_retention_ms)
        )
    return specs


def decode(topic: str, value: bytes) -> Message:
    """The payload of a record from `topic` (or from its dead-letter twin); raises DecodeError on bad bytes."""
    name = topic.removesuffix(DEAD_LETTER_SUFFIX)
    try:
        info = _registry()[name]
    except KeyError:
        raise KeyError(f"unknown topic {topic!r}") from None
    return message_class(info.message).FromString(value)
