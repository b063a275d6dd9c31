"""The demo shop's pages: products and recent orders, a form that places an order (and starts
its workflow), and an order page that shows the workflow's recorded steps."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from django_dbos import (
    DBOS,
    DBOSException,
    DBOSNonExistentWorkflowError,
    SetWorkflowID,
    StepInfo,
)
from django_dbos.models import TERMINAL_STATUSES, WorkflowStatus
from testproject.orders.models import Order, Product
from testproject.orders.workflows import order_workflow

RECENT_ORDERS = 20


class OrderForm(forms.Form):
    product = forms.ModelChoiceField(
        queryset=Product.objects.order_by("name"), empty_label=None, to_field_name="sku"
    )
    quantity = forms.IntegerField(min_value=1, max_value=20, initial=1)
    ship_delay_seconds = forms.FloatField(
        min_value=0, max_value=60, initial=2.0, label="Ship after (s)"
    )


def orders_with_status() -> QuerySet[Order]:
    """Orders with their workflow's status, in one query (a subquery on the status table)."""
    status = WorkflowStatus.objects.filter(workflow_uuid=OuterRef("workflow_id")).values("status")
    return Order.objects.select_related("product").annotate(workflow_status=Subquery(status[:1]))


def workflow_admin_url(workflow_id: str) -> str | None:
    """The workflow's admin page, if django_dbos's admin is installed."""
    try:
        return reverse("admin:django_dbos_workflowstatus_change", args=[workflow_id])
    except NoReverseMatch:
        return None


def from_epoch_ms(value: int | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC) if value is not None else None


def step_row(step: StepInfo) -> dict[str, Any]:
    """What the order page shows of one recorded step."""
    took = None
    if step.started_at_epoch_ms is not None and step.completed_at_epoch_ms is not None:
        took = step.completed_at_epoch_ms - step.started_at_epoch_ms
    name = step.function_name.rsplit(".", 1)[-1]
    output = json.dumps(step.output, default=str) if step.error is None else None
    if name == "sleep" and isinstance(step.output, int):  # DBOS.sleep records its wake-up time
        wake = from_epoch_ms(step.output)
        output = f"until {wake:%H:%M:%S} UTC (a restart sleeps only the rest)"
    return {
        "function_id": step.function_id,
        "name": name,
        "full_name": step.function_name,
        "output": output,
        "error": repr(step.error) if step.error is not None else None,
        "child_workflow_id": step.child_workflow_id,
        "took_ms": took,
    }


def _index(request: HttpRequest, form: OrderForm, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "products": Product.objects.order_by("name"),
        "orders": orders_with_status().order_by("-pk")[:RECENT_ORDERS],
    }
    return render(request, "orders/index.html", context, status=status)


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return _index(request, OrderForm())


@require_POST
def place_order(request: HttpRequest) -> HttpResponse:
    form = OrderForm(request.POST)
    if not form.is_valid():
        return _index(request, form, status=400)
    # Committed before the workflow starts: its steps run on another thread (connection).
    with transaction.atomic():
        order = Order.objects.create(
            product=form.cleaned_data["product"], quantity=form.cleaned_data["quantity"]
        )
        order.workflow_id = f"order-{order.pk}"
        order.save(update_fields=["workflow_id"])
    try:
        with SetWorkflowID(order.workflow_id):
            DBOS.start_workflow(
                order_workflow,
                order.pk,
                ship_delay_seconds=form.cleaned_data["ship_delay_seconds"],
            )
    except DBOSException as exc:
        messages.error(request, f"Order {order.pk} saved, but its workflow did not start: {exc}")
    else:
        messages.success(request, f"Order {order.pk} placed: workflow {order.workflow_id} started.")
    return redirect("orders-detail", pk=order.pk)


@require_GET
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_or_404(Order.objects.select_related("product"), pk=pk)
    context: dict[str, Any] = {
        "order": order,
        "status": None,
        "steps": [],
        "step_logs": order.step_logs.order_by("pk"),
        "payment_attempts": order.payment_attempts.order_by("pk"),
        "admin_url": None,
        "running": False,
    }
    if order.workflow_id:
        status = DBOS.get_workflow_status(order.workflow_id)
        try:
            steps = DBOS.list_workflow_steps(order.workflow_id)
        except DBOSNonExistentWorkflowError:
            steps = []
        context.update(
            status=status,
            steps=[step_row(step) for step in steps],
            output=json.dumps(status.output, indent=2, default=str) if status else None,
            created_at=from_epoch_ms(status.created_at) if status else None,
            updated_at=from_epoch_ms(status.updated_at) if status else None,
            admin_url=workflow_admin_url(order.workflow_id),
            running=status is not None and status.status not in TERMINAL_STATUSES,
        )
    return render(request, "orders/detail.html", context)
