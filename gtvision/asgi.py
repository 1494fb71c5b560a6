import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gtvision.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from gtvision.backpressure import BackpressureMiddleware  # noqa: E402
from gtvision.routing import websocket_urlpatterns  # noqa: E402
from gtvision.ws_auth import TokenOrSessionAuthMiddleware  # noqa: E402

# No origin validator in front: the consumers accept, then close with 4403 for a foreign
# Origin (gtvision.ws_auth.origin_allowed), so that a browser can read the code.
application = ProtocolTypeRouter(
    {
        "http": BackpressureMiddleware(django_asgi_app),  # slow readers hold no whole file
        "websocket": TokenOrSessionAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
