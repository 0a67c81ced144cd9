"""WebSocket routes of the app, for the project's ASGI application.

A project serves them by adding one entry to the ``ProtocolTypeRouter`` of its
``asgi.py``::

    "websocket": AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter(django_integration.routing.websocket_urlpatterns))
    ),

``AuthMiddlewareStack`` puts the session's user in the scope, which the consumer
needs to tell the task's owner from other users; ``AllowedHostsOriginValidator``
rejects pages of other sites, whose scripts would otherwise connect with the
user's cookies.
"""

from django.urls import re_path

from django_integration.consumers import MigrationConsumer

# Any segment reaches the consumer, so an invalid task id gets close code 4400
# rather than a failed route.
websocket_urlpatterns = [
    re_path(r"^ws/migration/(?P<task_id>[^/]+)/$", MigrationConsumer.as_asgi()),
]
