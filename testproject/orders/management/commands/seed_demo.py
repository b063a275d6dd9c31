"""``manage.py seed_demo``: demo products and the ``demo``/``demo`` superuser, idempotently."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_dbos import DBOS
from testproject.orders.models import Product
from testproject.orders.workflows import stock_report

PRODUCTS = [
    ("MUG-01", "Durable mug", Decimal("12.50"), 100),
    ("TEE-01", "Exactly-once T-shirt", Decimal("24.00"), 50),
    ("CAP-01", "Checkpoint cap", Decimal("18.00"), 25),
    ("STK-01", "Sticker pack", Decimal("4.00"), 500),
]
#: the demo's managed schedule: every minute, restock what is under 20
STOCK_REPORT = {
    "schedule_name": "orders.stock-report",
    "workflow_fn": stock_report,
    "schedule": "* * * * *",
    "context": {"threshold": 20, "quantity": 30},
}
DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # a demo account: seed_demo refuses to run with DEBUG off


class Command(BaseCommand):
    help = (
        "Create the demo products (topping their stock back up) and a superuser demo/demo. "
        "Safe to run again. Refuses to run with DEBUG off unless --force."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even with DEBUG off (never do this on a real site: demo/demo is a "
            "superuser).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not options["force"]:
            raise CommandError(
                "DEBUG is off: refusing to create a superuser with a known password. "
                "Use --force if this really is a demo database."
            )
        for sku, name, price, stock in PRODUCTS:
            product, created = Product.objects.get_or_create(
                sku=sku, defaults={"name": name, "price": price, "stock": stock}
            )
            if not created and product.stock < stock:
                product.stock = stock
                product.save(update_fields=["stock"])
            self.stdout.write(f"{'created' if created else 'kept   '} {product}")

        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=DEMO_USERNAME, defaults={"email": "demo@example.com"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(DEMO_PASSWORD)
        user.save()
        verb = "created" if created else "reset"
        self.stdout.write(
            self.style.SUCCESS(f"{verb} superuser {DEMO_USERNAME!r} (password {DEMO_PASSWORD!r})")
        )
        # deploy-style: the database's schedules made to match this list (idempotent)
        changes = DBOS.apply_schedules([STOCK_REPORT])
        self.stdout.write(f"schedule {STOCK_REPORT['schedule_name']!r}: {changes}")
