"""The one place that calls the services over gRPC: each call carries the caller and request id in metadata.

Views depend on the `ServiceClients` protocol; tests inject fakes through `create_app(db, clients=...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from weika.analytics.v1 import analytics_pb2, analytics_pb2_grpc
from weika.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from weika.orders.v1 import orders_pb2, orders_pb2_grpc
from weika.redemption.v1 import redemption_pb2, redemption_pb2_grpc
from weika_kit import context, grpc_client
from weika_kit.context import Caller
from weika_kit.errors import RemoteError

# Every service the gateway depends on; /healthz asks each of them.
SERVICES = ("catalog", "orders", "redemption", "marketing", "analytics")


class ServiceClients(Protocol):
    """What the views need from the services (requests and answers are the services' protobuf messages)."""

    def create_category(self, caller: Caller, request: catalog_pb2.CreateCategoryRequest) -> catalog_pb2.Category: ...

    def list_categories(self, caller: Caller) -> catalog_pb2.ListCategoriesResponse: ...

    def create_product(self, caller: Caller, request: catalog_pb2.CreateProductRequest) -> catalog_pb2.Product: ...

    def get_product(self, caller: Caller, product_id: str) -> catalog_pb2.Product: ...

    def create_order(self, caller: Caller, request: orders_pb2.CreateOrderRequest) -> orders_pb2.Order: ...

    def pay_order(self, caller: Caller, request: orders_pb2.PayOrderRequest) -> orders_pb2.Order: ...

    def get_order(self, caller: Caller, order_id: str) -> orders_pb2.Order: ...

    def list_coupons(self, caller: Caller,
                     request: redemption_pb2.ListCouponsRequest) -> redemption_pb2.ListCouponsResponse: ...

    def redeem_coupon(self, caller: Caller,
                      request: redemption_pb2.RedeemCouponRequest) -> redemption_pb2.Redemption: ...

    def get_overview(self, caller: Caller, request: analytics_pb2.GetOverviewRequest) -> analytics_pb2.Overview: ...

    def health(self, service: str, timeout_s: float) -> str:
        """The service's gRPC health status name ("SERVING", "NOT_SERVING", ...), or the failure's status name."""
        ...


class GrpcServiceClients:
    """The real clients: shared channels from weika_kit.grpc_client, addresses from weika_kit.config."""

    def __init__(self, *, targets: Mapping[str, str] | None = None, timeout_s: float = 10.0):
        # service name -> host:port; unset services are dialled at weika_kit.config.service_address(name)
        self.targets = dict(targets or {})
        self.timeout_s = timeout_s

    def _target(self, service: str) -> str:
        return self.targets.get(service, service)

    def _call(self, caller: Caller, service: str, stub_class: Callable[[grpc.Channel], Any], method: str,
              request: Any) -> Any:
        stub = grpc_client.stub(stub_class, self._target(service))
        with context.bound(caller=caller, request_id=context.request_id() or context.new_request_id()):
            try:
                return grpc_client.call(getattr(stub, method), request, timeout_s=self.timeout_s)
            except RemoteError as error:
                # so "service_unavailable" can say which service; domain details are left untouched
                if error.status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    error.details.setdefault("service", service)
                raise

    def create_category(self, caller: Caller, request: catalog_pb2.CreateCategoryRequest) -> catalog_pb2.Category:
        return self._call(caller, "catalog", catalog_pb2_grpc.CatalogServiceStub, "CreateCategory", request)

    def list_categories(self, caller: Caller) -> catalog_pb2.ListCategoriesResponse:
        return self._call(caller, "catalog", catalog_pb2_grpc.CatalogServiceStub, "ListCategories",
                          catalog_pb2.ListCategoriesRequest())

    def create_product(self, caller: Caller, request: catalog_pb2.CreateProductRequest) -> catalog_pb2.Product:
        return self._call(caller, "catalog", catalog_pb2_grpc.CatalogServiceStub, "CreateProduct", request)

    def get_product(self, caller: Caller, product_id: str) -> catalog_pb2.Product:
        return self._call(caller, "catalog", catalog_pb2_grpc.CatalogServiceStub, "GetProduct",
                          catalog_pb2.GetProductRequest(product_id=product_id))

    def create_order(self, caller: Caller, request: orders_pb2.CreateOrderRequest) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "CreateOrder", request)

    def pay_order(self, caller: Caller, request: orders_pb2.PayOrderRequest) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "PayOrder", request)

    def get_order(self, caller: Caller, order_id: str) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "GetOrder",
                          orders_pb2.GetOrderRequest(order_id=order_id))

    def list_coupons(self, caller: Caller,
                     request: redemption_pb2.ListCouponsRequest) -> redemption_pb2.ListCouponsResponse:
        return self._call(caller, "redemption", redemption_pb2_grpc.RedemptionServiceStub, "ListCoupons", request)

    def redeem_coupon(self, caller: Caller,
                      request: redemption_pb2.RedeemCouponRequest) -> redemption_pb2.Redemption:
        return self._call(caller, "redemption", redemption_pb2_grpc.RedemptionServiceStub, "RedeemCoupon", request)

    def get_overview(self, caller: Caller, request: analytics_pb2.GetOverviewRequest) -> analytics_pb2.Overview:
        return self._call(caller, "analytics", analytics_pb2_grpc.AnalyticsServiceStub, "GetOverview", request)

    def health(self, service: str, timeout_s: float) -> str:
        stub = grpc_client.stub(health_pb2_grpc.HealthStub, self._target(service))
        try:
            answer = grpc_client.call(stub.Check, health_pb2.HealthCheckRequest(service=""), timeout_s=timeout_s)
        except RemoteError as error:
            return str(error.status.name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
