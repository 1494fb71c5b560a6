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


def mask_source_url(value: str) -> str:
    """The URL with its password replaced by ``***`` (user kept, for the operator)."""
    parts = urlsplit(value)
    if parts.password is None and "@" not in parts.netloc:
        return value
    userinfo, _sep, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    netloc = f"{user}:***@{hostport}" if parts.password is not None else f"{user}@{hostport}"
    return parts._replace(netloc=netloc).geturl()
