"""The orders service's gRPC face: translates protobuf to use-case calls and back."""

from __future__ import annotations

from weika.orders.v1 import orders_pb2 as pb
from weika.orders.v1 import orders_pb2_grpc
from weika_kit.context import require_caller
from weika_kit.db import Database
from weika_kit.protos import from_timestamp, to_timestamp
from weika_orders.config import PaymentSettings
from weika_orders.domain.model import CouponTerms, CustomerSummary, NewOrder, Order, OrderSettings, Shipment
from weika_orders.domain.payment_channels import PROVIDER_CHANNELS, WECHAT
from weika_orders.service_layer import customers, lifecycle, payments, refunds, services
from weika_orders.service_layer.services import Upstreams


def _terms_to_pb(terms: CouponTerms | None) -> pb.CouponTerms | None:
    if terms is None:
        return None
    return pb.CouponTerms(
        face_value=terms.face_value, threshold=terms.threshold, store_ids=list(terms.store_ids),
        redeem_methods=list(terms.redeem_methods), validity_mode=terms.validity_mode,
        validity_days=terms.validity_days, starts_after_days=terms.starts_after_days,
        starts_at=to_timestamp(terms.starts_at), ends_at=to_timestamp(terms.ends_at))


def order_to_pb(order: Order) -> pb.Order:
    c = order.customer
    return pb.Order(
        id=order.id, status=order.status,
        customer=pb.Customer(customer_id=c.id, external_id=c.external_id, phone_masked=c.phone_masked,
                             birth_year=c.birth_year or 0, region=c.region or ""),
        lines=[pb.OrderLine(product_id=line.product_id, product_name=line.product_name,
                            product_kind=line.product_kind, category_id=line.category_id, quantity=line.quantity,
                            unit_price=line.unit_price, line_amount=line.line_amount,
                            coupon=_terms_to_pb(line.coupon))
               for line in order.lines],
        total_amount=order.total_amount, discount_amount=order.discount_amount,
        payable_amount=order.payable_amount, paid_amount=order.paid_amount, channel=order.channel,
        store_id=order.store_id, created_at=to_timestamp(order.created_at), paid_at=to_timestamp(order.paid_at),
        updated_at=to_timestamp(order.updated_at),
        discounts=[pb.OrderDiscount(rule_id=d.rule_id, kind=d.kind, amount=d.amount, description=d.description)
                   for d in order.discounts],
        shipment=pb.Shipment(carrier=order.shipment.carrier, tracking_number=order.shipment.tracking_number,
                             shipped_at=to_timestamp(order.shipment.shipped_at)) if order.shipment else None,
        returned_payments=[pb.ReturnedPayment(channel=r.channel, amount=r.amount, status=r.status,
                                              created_at=to_timestamp(r.created_at),
                                              provider_status=r.provider_status or "")
                           for r in order.returned_payments],
        refunds=[pb.Refund(id=r.id, order_id=order.id, status=r.status, amount=r.amount, reason=r.reason,
                           items=[pb.OrderItem(product_id=p, quantity=q) for p, q in sorted(r.items.items())],
                           voided_coupon_ids=r.voided_coupon_ids, created_at=to_timestamp(r.created_at),
                           provider_status=r.provider_status or "")
                 for r in order.refunds])


def _customer_pb(summary: CustomerSummary) -> pb.CustomerSummary:
    c = summary.customer
    return pb.CustomerSummary(
        customer=pb.Customer(customer_id=c.id, external_id=c.external_id, phone_masked=c.phone_masked,
                             birth_year=c.birth_year or 0, region=c.region or "", tags=list(c.tags)),
        order_count=summary.order_count, paid_amount=summary.paid_amount,
        first_seen_at=to_timestamp(summary.first_seen_at), last_order_at=to_timestamp(summary.last_order_at))


def settings_to_pb(settings: OrderSettings) -> pb.OrderSettings:
    return pb.OrderSettings(
        auto_cancel_minutes=settings.auto_cancel_minutes, auto_confirm_days=settings.auto_confirm_days,
        refund_window_days=settings.refund_window_days, refund_expired_coupons=settings.refund_expired_coupons,
        allow_partial_refunds=settings.allow_partial_refunds, updated_at=to_timestamp(settings.updated_at))


def channel_to_pb(view: payments.ChannelView) -> pb.PaymentChannel:
    return pb.PaymentChannel(channel=view.channel, notify_url=view.notify_url, settings=view.settings,
                             updated_at=to_timestamp(view.updated_at))


class OrdersServicer(orders_pb2_grpc.OrdersServiceServicer):
    def __init__(self, db: Database, upstreams: Upstreams, payment_settings: PaymentSettings | None = None):
        self.db = db
        self.upstreams = upstreams
        self.payment_settings = payment_settings or PaymentSettings.from_env()

    def CreateOrder(self, request: pb.CreateOrderRequest, context) -> pb.Order:  # noqa: N802
        caller = require_caller()
        new = NewOrder.parse(
            idempotency_key=request.idempotency_key, request_fingerprint=request.request_fingerprint,
            external_id=request.customer.external_id, phone=request.customer.phone,
            birth_year=request.customer.birth_year, region=request.customer.region,
            items=[(item.product_id, item.quantity) for item in request.items], store_id=request.store_id,
            current_year=self.db.clock().year)
        return order_to_pb(services.create_order(self.db, self.upstreams, caller, new))

    def PayOrder(self, request: pb.PayOrderRequest, context) -> pb.Order:  # noqa: N802
        channel = request.channel.strip()
        if channel not in PROVIDER_CHANNELS:
            return order_to_pb(services.pay_order(self.db, require_caller(), request.order_id, channel))
        order, prompt = payments.start_channel_payment(self.db, self.payment_settings, require_caller(),
                                                       request.order_id, channel)
        answer = order_to_pb(order)
        answer.payment_prompt.CopyFrom(pb.PaymentPrompt(
            channel=channel, out_trade_no=order.id, amount=order.payable_amount, code_url=prompt.code_url,
            prepay_id=prompt.prepay_id, qr_code=prompt.qr_code))
        return answer

    def GetOrder(self, request: pb.GetOrderRequest, context) -> pb.Order:  # noqa: N802
        return order_to_pb(services.get_order(self.db, require_caller(), request.order_id))

    def CancelOrder(self, request: pb.CancelOrderRequest, context) -> pb.Order:  # noqa: N802
        return order_to_pb(services.cancel_order(self.db, self.upstreams, require_caller(), request.order_id,
                                                 request.reason))

    def ConfigurePaymentChannel(self, request: pb.ConfigurePaymentChannelRequest,  # noqa: N802
                                context) -> pb.PaymentChannel:
        config = request.wechat if request.channel.strip() == WECHAT else request.alipay
        raw = {field.name: getattr(config, field.name) for field in config.DESCRIPTOR.fields}
        return channel_to_pb(payments.configure_channel(self.db, self.payment_settings, require_caller(),
                                                        request.channel, raw))

    def ListPaymentChannels(self, request: pb.ListPaymentChannelsRequest,  # noqa: N802
                            context) -> pb.ListPaymentChannelsResponse:
        views = payments.list_channels(self.db, self.payment_settings, require_caller())
        return pb.ListPaymentChannelsResponse(channels=[channel_to_pb(v) for v in views])

    def TestPaymentChannel(self, request: pb.TestPaymentChannelRequest,  # noqa: N802
                           context) -> pb.PaymentChannelTest:
        out_trade_no, steps = payments.run_channel_test(self.db, self.payment_settings, require_caller(),
                                                        request.channel)
        return pb.PaymentChannelTest(
            channel=request.channel, ok=bool(steps) and len(steps) == 4 and all(s.ok for s in steps),
            out_trade_no=out_trade_no,
            steps=[pb.PaymentChannelTestStep(name=s.name, ok=s.ok, detail=s.detail) for s in steps])

    def HandlePaymentNotification(self, request: pb.PaymentNotification,  # noqa: N802
                                  context) -> pb.PaymentNotificationReply:
        headers = {name.lower(): value for name, value in request.headers.items()}
        reply = payments.handle_notification(self.db, self.payment_settings, request.channel, headers, request.body,
                                             request.account)
        return pb.PaymentNotificationReply(http_status=reply.http_status, content_type=reply.content_type,
                                           body=reply.body, verdict=reply.verdict)

    def ShipOrder(self, request: pb.ShipOrderRequest, context) -> pb.Order:  # noqa: N802
        shipment = Shipment.parse(request.carrier, request.tracking_number)
        return order_to_pb(lifecycle.ship_order(self.db, require_caller(), request.order_id, shipment))

    def GetOrderHistory(self, request: pb.GetOrderHistoryRequest, context) -> pb.OrderHistory:  # noqa: N802
        transitions = lifecycle.order_history(self.db, require_caller(), request.order_id)
        return pb.OrderHistory(order_id=request.order_id, transitions=[
            pb.OrderTransition(from_status=t.from_status, to_status=t.to_status, actor=t.actor, reason=t.reason,
                               at=to_timestamp(t.at)) for t in transitions])

    def ListOrders(self, request: pb.ListOrdersRequest, context) -> pb.ListOrdersResponse:  # noqa: N802
        orders, cursor = lifecycle.list_orders(self.db, require_caller(), lifecycle.filter_from(request, from_timestamp),
                                               request.page_size, request.cursor)
        return pb.ListOrdersResponse(orders=[order_to_pb(o) for o in orders], next_cursor=cursor)

    def CountOrders(self, request: pb.ListOrdersRequest, context) -> pb.OrderCounts:  # noqa: N802
        counts = lifecycle.count_orders(self.db, require_caller(), lifecycle.filter_from(request, from_timestamp))
        return pb.OrderCounts(by_status=counts, total=sum(counts.values()))

    def PutOrderSettings(self, request: pb.OrderSettings, context) -> pb.OrderSettings:  # noqa: N802
        settings = OrderSettings.parse(
            auto_cancel_minutes=request.auto_cancel_minutes, auto_confirm_days=request.auto_confirm_days,
            refund_window_days=request.refund_window_days, refund_expired_coupons=request.refund_expired_coupons,
            allow_partial_refunds=request.allow_partial_refunds)
        return settings_to_pb(lifecycle.put_settings(self.db, require_caller(), settings))

    def GetOrderSettings(self, request: pb.GetOrderSettingsRequest, context) -> pb.OrderSettings:  # noqa: N802
        return settings_to_pb(lifecycle.get_settings(self.db, require_caller()))

    def ListCustomers(self, request: pb.ListCustomersRequest, context) -> pb.ListCustomersResponse:  # noqa: N802
        found, cursor = customers.list_customers(self.db, require_caller(), request.region, request.page_size,
                                                 request.cursor, request.tag)
        return pb.ListCustomersResponse(customers=[_customer_pb(s) for s in found], next_cursor=cursor)

    def GetCustomer(self, request: pb.GetCustomerRequest, context) -> pb.CustomerDetail:  # noqa: N802
        summary, orders = customers.get_customer(self.db, require_caller(), request.customer_id)
        return pb.CustomerDetail(summary=_customer_pb(summary), orders=[order_to_pb(o) for o in orders])

    def SetCustomerTags(self, request: pb.SetCustomerTagsRequest, context) -> pb.CustomerSummary:  # noqa: N802
        return _customer_pb(customers.set_customer_tags(self.db, require_caller(), request.customer_id,
                                                        list(request.tags)))

    def RefundOrder(self, request: pb.RefundOrderRequest, context) -> pb.Refund:  # noqa: N802
        result = refunds.refund_order(self.db, self.upstreams, self.payment_settings, require_caller(),
                                      request.order_id, [(i.product_id, i.quantity) for i in request.items],
                                      request.reason)
        return pb.Refund(id=result.id, order_id=result.order_id, status=result.status, amount=result.amount,
                         items=[pb.OrderItem(product_id=p, quantity=q) for p, q in sorted(result.items.items())],
                         reason=result.reason, voided_coupon_ids=result.voided_coupon_ids,
                         order_status=result.order_status, provider_status=result.provider_status)
