"""Admin for the demo shop: products, and orders with their workflow's status (one query)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from django_dbos.models import WorkflowStatus
from testproject.orders.models import Order, PaymentAttempt, Product, StepLog


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock"]
    search_fields = ["sku", "name"]
    ordering = ["name"]


class StepLogInline(admin.TabularInline):
    model = StepLog
    fields = ["step", "created_at"]
    readonly_fields = ["step", "created_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class PaymentAttemptInline(admin.TabularInline):
    model = PaymentAttempt
    fields = ["succeeded", "created_at"]
    readonly_fields = ["succeeded", "created_at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "product",
        "quantity",
        "status",
        "workflow",
        "workflow_status",
        "created_at",
    ]
    list_filter = ["status", "created_at"]
    list_select_related = ["product"]
    search_fields = ["=id", "workflow_id", "product__sku"]
    readonly_fields = ["workflow_id", "workflow_status", "created_at"]
    inlines = [StepLogInline, PaymentAttemptInline]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        status = WorkflowStatus.objects.filter(workflow_uuid=OuterRef("workflow_id"))
        return (
            super()
            .get_queryset(request)
            .annotate(_workflow_status=Subquery(status.values("status")[:1]))
        )

    @admin.display(description="workflow status", ordering="_workflow_status")
    def workflow_status(self, order: Order) -> str:
        return getattr(order, "_workflow_status", None) or "-"

    @admin.display(description="workflow", ordering="workflow_id")
    def workflow(self, order: Order) -> str:
        if not order.workflow_id:
            return "-"
        try:
            url = reverse("admin:django_dbos_workflowstatus_change", args=[order.workflow_id])
        except NoReverseMatch:  # django_dbos's admin not installed: link to the demo page
            url = reverse("orders-detail", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.workflow_id)
