from django.urls import path

from testproject.orders import views

urlpatterns = [
    path("", views.index, name="orders-index"),
]
