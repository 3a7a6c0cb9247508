"""RemoteError -> DomainError: an upstream refusal keeps its kind, code, message, details and gRPC status."""

from __future__ import annotations

import grpc
import pytest

from weika_kit.errors import Conflict, NotFound, RemoteError, TooManyRequests
from weika_orders.adapters.upstream import UpstreamFailure, domain_error_from_remote, is_refusal


@pytest.mark.parametrize(("status", "kind"), [
    (grpc.StatusCode.FAILED_PRECONDITION, Conflict),
    (grpc.StatusCode.NOT_FOUND, NotFound),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, TooManyRequests),
])
def test_a_refusal_becomes_a_domain_error_of_the_same_kind_code_message_and_details(status, kind):
    remote = RemoteError(status, "out_of_stock", "Mug is out of stock", {"product_id": "prd_1"})

    error = domain_error_from_remote(remote)

    assert type(error) is kind and is_refusal(error)
    assert (error.code, error.message, error.details) == ("out_of_stock", "Mug is out of stock",
                                                          {"product_id": "prd_1"})
    assert error.to_grpc_status().code == status


def test_a_call_without_an_answer_keeps_its_status_and_is_not_a_refusal():
    remote = RemoteError(grpc.StatusCode.DEADLINE_EXCEEDED, "service_timeout", "deadline exceeded", {})

    error = domain_error_from_remote(remote)

    assert isinstance(error, UpstreamFailure) and not is_refusal(error)
    assert error.code == "service_timeout"
    assert error.to_grpc_status().code == grpc.StatusCode.DEADLINE_EXCEEDED
