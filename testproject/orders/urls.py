from django.urls import path

from testproject.orders import views

urlpatterns = [
    path("", views.index, name="orders-index"),
    path("orders/", views.place_order, name="orders-place"),
    path("orders/<int:pk>/", views.order_detail, name="orders-detail"),
]
