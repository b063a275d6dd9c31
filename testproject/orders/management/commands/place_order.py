"""``manage.py place_order``: create an order and run the order workflow for it.

The workflow runs on this process's thread pool (``DBOS.start_workflow``), so the command
returns once it has finished; ``--wait`` prints every step as its checkpoint commits. Run it
twice with ``--order`` to see that a finished workflow ID is never run again.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_dbos import DBOS, SetWorkflowID, StepInfo
from django_dbos.management.arguments import non_negative_float, positive_int
from django_dbos.models import TERMINAL_STATUSES
from testproject.orders.models import Order, Product
from testproject.orders.workflows import order_workflow


def workflow_id_for(order: Order) -> str:
    """One workflow per order: the order's ID is the workflow's idempotency key."""
    return f"order-{order.pk}"


def short_name(function_name: str) -> str:
    return function_name.rsplit(".", 1)[-1]


def describe(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 100 else text[:97] + "..."


class Command(BaseCommand):
    help = (
        "Place an order and run its order workflow in this process. Without --wait, prints the "
        "workflow ID and its final status; with --wait, also each step as it completes and the "
        "result."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sku", help="Product to order (default: the first in stock).")
        parser.add_argument("--quantity", type=positive_int, default=1)
        parser.add_argument(
            "--ship-delay",
            type=non_negative_float,
            default=2.0,
            help="Seconds of durable sleep between payment and shipping (default 2).",
        )
        parser.add_argument(
            "--order",
            type=positive_int,
            help="Run the workflow of this existing order instead of placing a new one.",
        )
        parser.add_argument(
            "--wait", action="store_true", help="Print each step as it completes, then the result."
        )
        parser.add_argument(
            "--timeout",
            type=non_negative_float,
            default=120.0,
            help="Give up waiting after this many seconds (default 120).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        order = self._order(options)
        workflow_id = order.workflow_id
        with SetWorkflowID(workflow_id):
            handle = DBOS.start_workflow(
                order_workflow, order.pk, ship_delay_seconds=options["ship_delay"]
            )
        self.stdout.write(
            f"Order {order.pk}: {order.quantity} x {order.product.sku} -> workflow {workflow_id}"
        )
        if options["wait"]:
            self._follow(workflow_id, options["timeout"])
        try:
            result = handle.get_result(timeout=options["timeout"])
        except TimeoutError:
            raise CommandError(
                f"Workflow {workflow_id} still running after {options['timeout']}s; it goes on "
                "in the background of this process only until it exits, then a dbos_worker "
                "adopts it."
            ) from None
        except Exception as exc:
            raise CommandError(f"Workflow {workflow_id} failed: {exc!r}") from exc
        status = handle.get_status()
        self.stdout.write(self.style.SUCCESS(f"Workflow {workflow_id}: {status.status}"))
        if options["wait"]:
            self.stdout.write(json.dumps(result, indent=2, default=str))

    def _order(self, options: dict[str, Any]) -> Order:
        if options["order"]:
            try:
                order = Order.objects.select_related("product").get(pk=options["order"])
            except Order.DoesNotExist:
                raise CommandError(f"There is no order {options['order']}.") from None
            if not order.workflow_id:
                order.workflow_id = workflow_id_for(order)
                order.save(update_fields=["workflow_id"])
            return order
        products = Product.objects.order_by("pk")
        if options["sku"]:
            product = products.filter(sku=options["sku"]).first()
            if product is None:
                known = ", ".join(products.values_list("sku", flat=True)) or "none"
                raise CommandError(f"No product {options['sku']!r} (known: {known}).")
        else:
            product = products.filter(stock__gte=options["quantity"]).first()
            if product is None:
                raise CommandError("No product in stock: run `manage.py seed_demo` first.")
        # Committed before the workflow starts: its steps run on another thread.
        with transaction.atomic():
            order = Order.objects.create(product=product, quantity=options["quantity"])
            order.workflow_id = workflow_id_for(order)
            order.save(update_fields=["workflow_id"])
        return order

    def _follow(self, workflow_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        printed = 0
        while time.monotonic() < deadline:
            status = DBOS.get_workflow_status(workflow_id)
            steps = DBOS.list_workflow_steps(workflow_id)
            for step in steps[printed:]:
                self._print_step(step)
            printed = len(steps)
            if status is not None and status.status in TERMINAL_STATUSES:
                return
            time.sleep(0.1)

    def _print_step(self, step: StepInfo) -> None:
        took = ""
        if step.started_at_epoch_ms and step.completed_at_epoch_ms:
            took = f" ({step.completed_at_epoch_ms - step.started_at_epoch_ms} ms)"
        if step.error is not None:
            outcome = self.style.ERROR(f"raised {step.error!r}")
        elif step.child_workflow_id:
            outcome = f"started child {step.child_workflow_id}"
        elif short_name(step.function_name) == "sleep" and isinstance(step.output, int):
            wake = dt.datetime.fromtimestamp(step.output / 1000, tz=dt.UTC)
            outcome = f"until {wake:%H:%M:%S.%f}"[:-3] + " UTC (durable: a restart sleeps the rest)"
        else:
            outcome = f"-> {describe(step.output)}"
        self.stdout.write(
            f"  step {step.function_id}: {short_name(step.function_name)} {outcome}{took}"
        )
