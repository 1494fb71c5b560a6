"""Brazilian registry validators: UF, IBGE municipality code, CNPJ, camera source URL."""

import re
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

UFS = [
    "AC", "AL", "AP", "AM", "BA", "CE", "DF", "ES", "GO", "MA", "MT", "MS", "MG", "PA",
    "PB", "PR", "PE", "PI", "RJ", "RN", "RS", "RO", "RR", "SC", "SP", "SE", "TO",
]  # fmt: skip
UF_CHOICES = [(uf, uf) for uf in UFS]
IBGE_UF_PREFIXES = {
    "RO": "11", "AC": "12", "AM": "13", "RR": "14", "PA": "15", "AP": "16", "TO": "17",
    "MA": "21", "PI": "22", "CE": "23", "RN": "24", "PB": "25", "PE": "26", "AL": "27",
    "SE": "28", "BA": "29", "MG": "31", "ES": "32", "RJ": "33", "SP": "35", "PR": "41",
    "SC": "42", "RS": "43", "MS": "50", "MT": "51", "GO": "52", "DF": "53",
}  # fmt: skip
SOURCE_URL_MAX_LENGTH = 2048
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")


def validate_ibge_code(value: str) -> None:
    if not re.fullmatch(r"\d{7}", value or ""):
        raise ValidationError(_("The IBGE code must have exactly 7 digits."))


def normalize_cnpj(value: str) -> str:
    """Strip the usual punctuation (``12.345.678/0001-95``); anything else stays to fail."""
    return re.sub(r"[.\-/\s]", "", value or "")


def cnpj_check_digits(first12: str) -> str:
    digits = [int(c) for c in first12]
    for weights in ([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]):
        remainder = sum(d * w for d, w in zip(digits, weights, strict=True)) % 11
        digits.append(0 if remainder < 2 else 11 - remainder)
    return f"{digits[12]}{digits[13]}"


def validate_cnpj(value: str) -> None:
    if not re.fullmatch(r"\d{14}", value or ""):
        raise ValidationError(_("The CNPJ must have 14 digits."))
    if len(set(value)) == 1 or cnpj_check_digits(value[:12]) != value[12:]:
        raise ValidationError(_("Invalid CNPJ: check digits do not match."))


def validate_source_url(value: str) -> None:
    if len(value) > SOURCE_URL_MAX_LENGTH:
        raise ValidationError(
            _("The source URL must have at most %(max)d characters."),
            params={"max": SOURCE_URL_MAX_LENGTH},
        )
    if _CONTROL_OR_SPACE.search(value):
        raise ValidationError(_("The source URL must not contain spaces or control characters."))
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValidationError(_("The source URL is malformed.")) from exc
    if parts.scheme not in ("rtsp", "rtsps"):
        raise ValidationError(_("The source URL must start with rtsp:// or rtsps://."))
    if not parts.hostname:
        raise ValidationError(_("The source URL must have a host."))


# Query (or path) parameters that carry credentials on some cameras' URLs
# (``?user=admin&password=...``, ``/user=admin&password=...&channel=1``): any key holding
# one of these words, case-insensitive.
_CREDENTIAL_KEY_WORDS = (
    "user", "login", "usuario", "pass", "pwd", "senha", "token", "auth", "key", "secret",
    "cred", "sig",
)  # fmt: skip
_CREDENTIAL_PARAM = re.compile(
    r"(?P<key>[A-Za-z0-9_.\-]*(?:"
    + "|".join(_CREDENTIAL_KEY_WORDS)
    + r")[A-Za-z0-9_.\-]*)=(?P<value>[^&;#]*)",
    re.IGNORECASE,
)
MASK = "***"


def _mask_params(text: str) -> str:
    return _CREDENTIAL_PARAM.sub(
        lambda m: f"{m.group('key')}={MASK if m.group('value') else ''}", text
    )


def _split_userinfo(rest: str) -> tuple[str | None, str]:
    """(userinfo or None, the rest) of what follows ``scheme://``: the userinfo ends at the
    last "@" before any query or fragment (an unencoded password may hold "@" or "/")."""
    stop = len(rest)
    for mark in "?#":
        found = rest.find(mark)
        if found >= 0:
            stop = min(stop, found)
    at = rest.rfind("@", 0, stop)
    return (rest[:at], rest[at + 1 :]) if at >= 0 else (None, rest)


def mask_source_url(value: str) -> str:
    """The URL with every credential replaced by ``***``: the userinfo's password (its user
    is kept, for the operator) and the values of credential-like parameters in the path,
    query or fragment (``user``, ``password``, ``pwd``, ``senha``, ``token``, ``key``...)."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        return _mask_params(value)
    userinfo, tail = _split_userinfo(rest)
    authority = ""
    if userinfo is not None:
        user, colon, _password = userinfo.partition(":")
        authority = f"{user}:{MASK}@" if colon else f"{user}@"
    host_end = len(tail)
    for mark in "/?#":
        found = tail.find(mark)
        if found >= 0:
            host_end = min(host_end, found)
    return f"{scheme}://{authority}{tail[:host_end]}{_mask_params(tail[host_end:])}"


def url_secrets(value: str) -> set[str]:
    """The credential strings in ``value`` (userinfo password, credential-like parameter
    values), for callers that must scrub them from free text such as a process's output."""
    _scheme, sep, rest = value.partition("://")
    userinfo, tail = _split_userinfo(rest) if sep else (None, value)
    found = {m.group("value") for m in _CREDENTIAL_PARAM.finditer(tail)}
    if userinfo is not None:
        found.add(userinfo.partition(":")[2])
    return {secret for secret in found if secret}
