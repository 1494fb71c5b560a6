from rest_framework.routers import SimpleRouter

from lpr import views

router = SimpleRouter()
router.trailing_slash = "/?"
router.register("reads", views.ReadViewSet, basename="lpr-read")
router.register("watchlist", views.WatchlistViewSet, basename="lpr-watchlist")

urlpatterns = router.urls
