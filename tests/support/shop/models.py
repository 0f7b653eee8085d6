from django.db import models


class Customer(models.Model):
    email = models.EmailField(db_index=True)  # not unique: the ambiguity tests need two with one
    name = models.CharField(max_length=100)
    phone = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField()

    def __str__(self):
        return self.name


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    ordered_at = models.DateTimeField()
    status = models.CharField(max_length=20)
    total_cents = models.IntegerField()

    def __str__(self):
        return f"order {self.pk}"


class Ticket(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="tickets")
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, related_name="tickets")
    opened_at = models.DateTimeField()
    body = models.TextField()

    def __str__(self):
        return f"ticket {self.pk}"


class AdProfile(models.Model):
    """An advertising profile with the flags a restriction or an opt-out sets (issue 11); `segment`
    is a text column, for the guard's flag check."""

    email = models.EmailField(db_index=True)
    segment = models.CharField(max_length=40, blank=True)
    restricted = models.BooleanField(default=False)
    sale_opted_out = models.BooleanField(default=False)
    sensitive_limited = models.BooleanField(default=False)

    def __str__(self):
        return f"ad profile {self.pk}"
