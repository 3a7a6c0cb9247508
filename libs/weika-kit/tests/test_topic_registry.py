"""The topic registry agrees with the protobuf contracts: examples parse strictly, keys exist, every event has a topic."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from weika_kit import topics
from weika_kit.bus import TopicSpec

SERVICES = {"catalog", "orders", "redemption", "marketing", "analytics", "gateway"}
REGISTRY = topics.load_registry()
TOPIC_NAMES = sorted(REGISTRY)


def event_package_messages() -> list[Descriptor]:
    """Top-level messages of every weika.events.v1 module."""
    package = importlib.import_module(topics.EVENTS_PACKAGE)
    descriptors = []
    for module_info in pkgutil.iter_modules(package.__path__):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"{topics.EVENTS_PACKAGE}.{module_info.name}")
            descriptors.extend(module.DESCRIPTOR.message_types_by_name.values())
    return descriptors


def event_messages() -> set[str]:
    """Events are the top-level messages no other message embeds (OrderLine, OrderCustomer are parts)."""
    messages = event_package_messages()
    embedded = {
        field.message_type.full_name
        for message in messages
        for field in message.fields
        if field.message_type is not None
    }
    return {message.full_name for message in messages} - embedded


def kebab(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", camel).lower()


@pytest.mark.parametrize("name", TOPIC_NAMES)
def test_example_parses_strictly_and_round_trips_through_bytes(name: str) -> None:
    info = REGISTRY[name]
    cls = topics.message_class(info.message)

    parsed = json_format.ParseDict(info.example, cls())
    decoded = topics.decode(name, parsed.SerializeToString())

    assert decoded == parsed
    assert type(decoded) is cls


@pytest.mark.parametrize("name", TOPIC_NAMES)
def test_key_field_is_a_string_present_in_the_example(name: str) -> None:
    info = REGISTRY[name]
    cls = topics.message_class(info.message)

    key_field = cls.DESCRIPTOR.fields_by_name.get(info.key)
    message = json_format.ParseDict(info.example, cls())

    assert key_field is not None, f"{info.message} has no field {info.key}"
    assert key_field.type == FieldDescriptor.TYPE_STRING
    assert getattr(message, info.key) != ""


@pytest.mark.parametrize("name", TOPIC_NAMES)
def test_every_event_carries_merchant_and_mode(name: str) -> None:
    info = REGISTRY[name]
    message = json_format.ParseDict(info.example, topics.message_class(info.message)())

    assert message.merchant_id != ""
    assert message.mode in {"live", "test"}


@pytest.mark.parametrize("name", TOPIC_NAMES)
def test_topic_is_named_after_its_owner_and_event(name: str) -> None:
    info = REGISTRY[name]
    package, _, event = info.message.rpartition(".")

    assert package == topics.EVENTS_PACKAGE
    assert name == f"weika.{info.owner}.{kebab(event)}.v1"
    assert info.producers == (info.owner,)
    assert info.partitions > 0 and info.retention_ms > 0 and info.description


@pytest.mark.parametrize("name", TOPIC_NAMES)
def test_producers_and_consumers_are_known_services(name: str) -> None:
    info = REGISTRY[name]

    assert set(info.producers) <= SERVICES
    assert set(info.consumers) <= SERVICES
    assert "analytics" in info.consumers


def test_every_event_message_has_exactly_one_topic() -> None:
    registered = [info.message for info in REGISTRY.values()]

    assert sorted(registered) == sorted(event_messages())
    assert len(registered) == len(set(registered))


def test_topic_for_finds_the_topic_of_a_message_and_of_its_class() -> None:
    cls = topics.message_class("weika.events.v1.OrderPaid")

    assert topics.topic_for(cls).name == "weika.orders.order-paid.v1"
    assert topics.topic_for(cls(order_id="ord_1")).key == "order_id"


def test_topic_for_refuses_a_message_without_topic() -> None:
    line = topics.message_class("weika.events.v1.OrderLine")

    with pytest.raises(KeyError):
        topics.topic_for(line)


def test_message_class_is_the_generated_class() -> None:
    from weika.events.v1 import redemption_pb2

    assert topics.message_class("weika.events.v1.CouponRedeemed") is redemption_pb2.CouponRedeemed


def test_decode_reads_a_dead_letter_copy_like_the_original() -> None:
    paid = topics.message_class("weika.events.v1.OrderPaid")(order_id="ord_1", paid_amount=7480)

    decoded = topics.decode("weika.orders.order-paid.v1.dlq", paid.SerializeToString())

    assert decoded == paid


def test_decode_refuses_an_unknown_topic() -> None:
    with pytest.raises(KeyError):
        topics.decode("weika.orders.order-lost.v1", b"")


def test_topic_specs_cover_every_topic_and_its_dead_letter_twin() -> None:
    specs = topics.topic_specs()
    by_name = {spec.name: spec for spec in specs}

    assert len(specs) == 2 * len(REGISTRY)
    for info in REGISTRY.values():
        assert by_name[info.name] == TopicSpec(info.name, info.partitions, info.retention_ms)
        assert by_name[info.dead_letter_topic].partitions == info.partitions


def test_topic_specs_partitions_override_applies_to_every_topic() -> None:
    assert {spec.partitions for spec in topics.topic_specs(partitions=1)} == {1}
