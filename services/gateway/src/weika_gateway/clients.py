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

    def catalog(self, caller: Caller, method: str, request: Any) -> Any:
        """Any other CatalogService RPC by name (e.g. "ListProducts"), request and answer its messages."""
        ...

    def create_order(self, caller: Caller, request: orders_pb2.CreateOrderRequest) -> orders_pb2.Order: ...

    def pay_order(self, caller: Caller, request: orders_pb2.PayOrderRequest) -> orders_pb2.Order: ...

    def get_order(self, caller: Caller, order_id: str) -> orders_pb2.Order: ...

    def configure_payment_channel(self, caller: Caller,
                                  request: orders_pb2.ConfigurePaymentChannelRequest) -> orders_pb2.PaymentChannel: ...

    def list_payment_channels(self, caller: Caller) -> orders_pb2.ListPaymentChannelsResponse: ...

    def test_payment_channel(self, caller: Caller, channel: str) -> orders_pb2.PaymentChannelTest: ...

    def cancel_order(self, caller: Caller, request: orders_pb2.CancelOrderRequest) -> orders_pb2.Order: ...

    def ship_order(self, caller: Caller, request: orders_pb2.ShipOrderRequest) -> orders_pb2.Order: ...

    def order_history(self, caller: Caller, order_id: str) -> orders_pb2.OrderHistory: ...

    def list_orders(self, caller: Caller, request: orders_pb2.ListOrdersRequest) -> orders_pb2.ListOrdersResponse: ...

    def count_orders(self, caller: Caller, request: orders_pb2.ListOrdersRequest) -> orders_pb2.OrderCounts: ...

    def put_order_settings(self, caller: Caller, request: orders_pb2.OrderSettings) -> orders_pb2.OrderSettings: ...

    def get_order_settings(self, caller: Caller) -> orders_pb2.OrderSettings: ...

    def list_customers(self, caller: Caller,
                       request: orders_pb2.ListCustomersRequest) -> orders_pb2.ListCustomersResponse: ...

    def get_customer(self, caller: Caller, customer_id: str) -> orders_pb2.CustomerDetail: ...

    def set_customer_tags(self, caller: Caller, customer_id: str, tags: list[str]) -> orders_pb2.CustomerSummary: ...

    def refund_order(self, caller: Caller, request: orders_pb2.RefundOrderRequest) -> orders_pb2.Refund: ...

    def handle_payment_notification(
            self, request: orders_pb2.PaymentNotification) -> orders_pb2.PaymentNotificationReply:
        """A provider's notification, forwarded with no caller: the provider is not a merchant."""
        ...

    def list_coupons(self, caller: Caller,
                     request: redemption_pb2.ListCouponsRequest) -> redemption_pb2.ListCouponsResponse: ...

    def redeem_coupon(self, caller: Caller,
                      request: redemption_pb2.RedeemCouponRequest) -> redemption_pb2.Redemption: ...

    def redemption(self, caller: Caller, method: str, request: Any) -> Any:
        """Any other RedemptionService RPC by name (e.g. "CheckCoupon"), request and answer its messages."""
        ...

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

    def catalog(self, caller: Caller, method: str, request: Any) -> Any:
        return self._call(caller, "catalog", catalog_pb2_grpc.CatalogServiceStub, method, request)

    def create_order(self, caller: Caller, request: orders_pb2.CreateOrderRequest) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "CreateOrder", request)

    def pay_order(self, caller: Caller, request: orders_pb2.PayOrderRequest) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "PayOrder", request)

    def get_order(self, caller: Caller, order_id: str) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "GetOrder",
                          orders_pb2.GetOrderRequest(order_id=order_id))

    def configure_payment_channel(self, caller: Caller,
                                  request: orders_pb2.ConfigurePaymentChannelRequest) -> orders_pb2.PaymentChannel:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "ConfigurePaymentChannel", request)

    def list_payment_channels(self, caller: Caller) -> orders_pb2.ListPaymentChannelsResponse:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "ListPaymentChannels",
                          orders_pb2.ListPaymentChannelsRequest())

    def test_payment_channel(self, caller: Caller, channel: str) -> orders_pb2.PaymentChannelTest:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "TestPaymentChannel",
                          orders_pb2.TestPaymentChannelRequest(channel=channel))

    def cancel_order(self, caller: Caller, request: orders_pb2.CancelOrderRequest) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "CancelOrder", request)

    def ship_order(self, caller: Caller, request: orders_pb2.ShipOrderRequest) -> orders_pb2.Order:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "ShipOrder", request)

    def order_history(self, caller: Caller, order_id: str) -> orders_pb2.OrderHistory:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "GetOrderHistory",
                          orders_pb2.GetOrderHistoryRequest(order_id=order_id))

    def list_orders(self, caller: Caller, request: orders_pb2.ListOrdersRequest) -> orders_pb2.ListOrdersResponse:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "ListOrders", request)

    def count_orders(self, caller: Caller, request: orders_pb2.ListOrdersRequest) -> orders_pb2.OrderCounts:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "CountOrders", request)

    def put_order_settings(self, caller: Caller, request: orders_pb2.OrderSettings) -> orders_pb2.OrderSettings:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "PutOrderSettings", request)

    def get_order_settings(self, caller: Caller) -> orders_pb2.OrderSettings:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "GetOrderSettings",
                          orders_pb2.GetOrderSettingsRequest())

    def list_customers(self, caller: Caller,
                       request: orders_pb2.ListCustomersRequest) -> orders_pb2.ListCustomersResponse:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "ListCustomers", request)

    def get_customer(self, caller: Caller, customer_id: str) -> orders_pb2.CustomerDetail:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "GetCustomer",
                          orders_pb2.GetCustomerRequest(customer_id=customer_id))

    def set_customer_tags(self, caller: Caller, customer_id: str, tags: list[str]) -> orders_pb2.CustomerSummary:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "SetCustomerTags",
                          orders_pb2.SetCustomerTagsRequest(customer_id=customer_id, tags=tags))

    def refund_order(self, caller: Caller, request: orders_pb2.RefundOrderRequest) -> orders_pb2.Refund:
        return self._call(caller, "orders", orders_pb2_grpc.OrdersServiceStub, "RefundOrder", request)

    def handle_payment_notification(
            self, request: orders_pb2.PaymentNotification) -> orders_pb2.PaymentNotificationReply:
        stub = grpc_client.stub(orders_pb2_grpc.OrdersServiceStub, self._target("orders"))
        with context.bound(request_id=context.request_id() or context.new_request_id()):
            return grpc_client.call(stub.HandlePaymentNotification, request, timeout_s=self.timeout_s)

    def list_coupons(self, caller: Caller,
                     request: redemption_pb2.ListCouponsRequest) -> redemption_pb2.ListCouponsResponse:
        return self._call(caller, "redemption", redemption_pb2_grpc.RedemptionServiceStub, "ListCoupons", request)

    def redeem_coupon(self, caller: Caller,
                      request: redemption_pb2.RedeemCouponRequest) -> redemption_pb2.Redemption:
        return self._call(caller, "redemption", redemption_pb2_grpc.RedemptionServiceStub, "RedeemCoupon", request)

    def redemption(self, caller: Caller, method: str, request: Any) -> Any:
        return self._call(caller, "redemption", redemption_pb2_grpc.RedemptionServiceStub, method, request)

    def get_overview(self, caller: Caller, request: analytics_pb2.GetOverviewRequest) -> analytics_pb2.Overview:
        return self._call(caller, "analytics", analytics_pb2_grpc.AnalyticsServiceStub, "GetOverview", request)

    def health(self, service: str, timeout_s: float) -> str:
        stub = grpc_client.stub(health_pb2_grpc.HealthStub, self._target(service))
        try:
            answer = grpc_client.call(stub.Check, health_pb2.HealthCheckRequest(service=""), timeout_s=timeout_s)
        except RemoteError as error:
            return str(error.status.name)
        return str(health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status))
