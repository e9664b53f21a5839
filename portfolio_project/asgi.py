"""The application an ASGI server runs (``portfolio_project.asgi:application``): Django's views
over HTTP, and the WebSocket streams on the same port (docs/DESIGN.md, "Streams").

The lifespan protocol stops this process's stream hub (alpaca_compat/streams/hub.py) when the
server shuts down: its LISTEN session and its database thread's connection close cleanly.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portfolio_project.settings")

django_http = get_asgi_application()  # sets Django up before the routes below are imported

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from alpaca_compat.streams.hub import stop_hub  # noqa: E402
from portfolio_project.urls import websocket_urlpatterns  # noqa: E402


async def lifespan(scope, receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await stop_hub()
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": URLRouter(websocket_urlpatterns),
        "lifespan": lifespan,
    }
)
