"""Strings of the LPR page's and alert banner's JavaScript (added to the dashboard catalog)."""

from django.utils.translation import gettext_noop

JS_MESSAGES = [
    gettext_noop("Watched plate %(plate)s at %(camera)s"),
    gettext_noop("Reason: %(reason)s"),
    gettext_noop("See plate reads"),
    gettext_noop("Dismiss"),
    gettext_noop("Playback"),
    gettext_noop("No reads yet."),
    gettext_noop("No reads match the search."),
    gettext_noop("%(count)s reads"),
    gettext_noop("Active"),
    gettext_noop("Inactive"),
    gettext_noop("Deactivate"),
    gettext_noop("Activate"),
    gettext_noop("Remove"),
    gettext_noop("Remove %(plate)s from the watchlist?"),
    gettext_noop("The watchlist is empty."),
    gettext_noop("Plate added to the watchlist."),
    gettext_noop("never"),
    gettext_noop("Crop of plate %(plate)s"),
]
