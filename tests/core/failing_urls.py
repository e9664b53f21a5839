"""A URL whose view fails, for tests of what a server error logs."""

from django.urls import path


def boom(request):
    return 1 / 0


urlpatterns = [path("api/boom/", boom)]
