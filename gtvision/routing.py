from django.urls import path

from gtvision.consumers import EventsConsumer
from streaming.consumers import StreamEventsConsumer

websocket_urlpatterns = [
    path("ws/events", EventsConsumer.as_asgi()),
    path("ws/streams/<int:stream_id>/events", StreamEventsConsumer.as_asgi()),
    path("api/streams/<int:stream_id>/events", StreamEventsConsumer.as_asgi()),
]
