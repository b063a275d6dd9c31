"""Models the tests' workflows write to."""

from django.db import models


class Ledger(models.Model):
    """Rows a transaction writes: counting them proves exactly-once effects."""

    key = models.CharField(max_length=100)
    amount = models.IntegerField(default=0)


class Run(models.Model):
    """One row each time a step body really runs (autocommit, outside any atomic)."""

    key = models.CharField(max_length=100)
    step = models.CharField(max_length=100)
