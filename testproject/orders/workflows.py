"""The order workflow from the DBOS docs, on the Django ORM.

validate (step) -> reserve stock (transaction: exactly once) -> charge payment (step, retried
with backoff against a flaky gateway) -> wait (durable sleep) -> ship (step).

Beside it, a schedule and a queue: ``stock_report`` runs on a cron schedule (``seed_demo``
creates it, every minute) and puts a ``restock`` workflow for each product running low on the
``orders.restock`` queue, partitioned by product so that one product is never restocked twice at
once.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import F

from django_dbos import DBOS, Queue, SetEnqueueOptions, SetWorkflowID
from testproject.orders.models import Order, PaymentAttempt, Product, StepLog


class OutOfStockError(Exception):
    """Not enough stock to reserve the order."""


class PaymentDeclinedError(Exception):
    """The fake gateway said no (this attempt)."""


@DBOS.step()
def validate_order(order_id: int) -> dict:
    order = Order.objects.select_related("product").get(pk=order_id)
    StepLog.objects.create(order=order, step="validate")
    if order.quantity < 1:
        raise ValueError(f"Order {order_id} has no items")
    return {
        "sku": order.product.sku,
        "quantity": order.quantity,
        "total": str(order.product.price * order.quantity),
    }


@DBOS.transaction()
def reserve_stock(order_id: int) -> int:
    order = Order.objects.select_for_update().get(pk=order_id)
    taken = Product.objects.filter(pk=order.product_id, stock__gte=order.quantity).update(
        stock=F("stock") - order.quantity
    )
    if not taken:
        raise OutOfStockError(f"Not enough stock for order {order_id}")
    order.status = Order.Status.RESERVED
    order.save(update_fields=["status"])
    return Product.objects.get(pk=order.product_id).stock


def flaky_gateway_charge(order_id: int, failures_before_success: int = 1) -> str:
    """A fake payment gateway that declines the first attempt(s) of every order."""
    attempts = PaymentAttempt.objects.filter(order_id=order_id).count()
    succeeded = attempts >= failures_before_success
    PaymentAttempt.objects.create(order_id=order_id, succeeded=succeeded)
    if not succeeded:
        raise PaymentDeclinedError(f"Gateway declined attempt {attempts + 1} for order {order_id}")
    return f"ch_{order_id}_{attempts + 1}"


@DBOS.step(retries_allowed=True, max_attempts=4, interval_seconds=0.2, backoff_rate=2.0)
def charge_payment(order_id: int) -> str:
    charge_id = flaky_gateway_charge(order_id)
    StepLog.objects.create(order_id=order_id, step="charge")
    Order.objects.filter(pk=order_id).update(status=Order.Status.PAID)
    return charge_id


@DBOS.step()
def ship_order(order_id: int) -> str:
    StepLog.objects.create(order_id=order_id, step="ship")
    Order.objects.filter(pk=order_id).update(status=Order.Status.SHIPPED)
    return f"shipped-{order_id}"


@DBOS.workflow()
def order_workflow(order_id: int, ship_delay_seconds: float = 2.0) -> dict:
    summary = validate_order(order_id)
    remaining_stock = reserve_stock(order_id)
    charge_id = charge_payment(order_id)
    DBOS.sleep(ship_delay_seconds)
    tracking = ship_order(order_id)
    return {**summary, "charge_id": charge_id, "tracking": tracking, "stock_left": remaining_stock}


# -- restocking: a schedule feeding a partitioned queue -------------------------------------------

#: at most two restocks at once, and one per product (the partition key is the SKU)
restock_queue = Queue(
    "orders.restock", concurrency=2, partition_queue=True, partition_concurrency=1
)


@DBOS.transaction()
def add_stock(sku: str, quantity: int) -> int:
    Product.objects.filter(sku=sku).update(stock=F("stock") + quantity)
    return Product.objects.get(sku=sku).stock


@DBOS.workflow()
def restock(sku: str, quantity: int) -> int:
    """Order ``quantity`` more of ``sku`` from the supplier (here: add it, exactly once)."""
    return add_stock(sku, quantity)


@DBOS.step()
def low_stock_skus(threshold: int) -> list[str]:
    return list(
        Product.objects.filter(stock__lt=threshold).order_by("sku").values_list("sku", flat=True)
    )


@DBOS.workflow()
def stock_report(scheduled_time: dt.datetime, context: dict[str, Any]) -> list[str]:
    """Fired by the ``orders.stock-report`` schedule: enqueue a restock of each product under
    ``context["threshold"]``, one per product and firing (the workflow ID says which)."""
    low = low_stock_skus(context["threshold"])
    for sku in low:
        with (
            SetWorkflowID(f"restock-{sku}-{scheduled_time:%Y%m%dT%H%M%S}"),
            SetEnqueueOptions(queue_partition_key=sku),
        ):
            restock_queue.enqueue(restock, sku, context["quantity"])
    return low
