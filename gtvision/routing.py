from django.urls import path, re_path

from gtvision.consumers import EventsConsumer, not_found
from streaming.consumers import StreamEventsConsumer

websocket_urlpatterns = [
    path("ws/events", EventsConsumer.as_asgi()),
    path("ws/streams/<int:stream_id>/events", StreamEventsConsumer.as_asgi()),
    path("api/streams/<int:stream_id>/events", StreamEventsConsumer.as_asgi()),
    re_path(r"", not_found),  # anything else: accepted, then closed with 4404
]
