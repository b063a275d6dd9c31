"""The demo shop: products with stock, orders, and logs that make the workflow's effects visible."""

from django.db import models


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} ({self.stock} in stock)"


class Order(models.Model):
    class Status(models.TextChoices):
        NEW = "NEW"
        RESERVED = "RESERVED"
        PAID = "PAID"
        SHIPPED = "SHIPPED"
        FAILED = "FAILED"

    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    quantity = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    workflow_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Order {self.pk}: {self.quantity} x {self.product.sku} ({self.status})"


class StepLog(models.Model):
    """One row each time a step body actually runs (replays write nothing)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="step_logs")
    step = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.order_id}: {self.step}"


class PaymentAttempt(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="payment_attempts")
    succeeded = models.BooleanField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.order_id}: {'ok' if self.succeeded else 'declined'}"
