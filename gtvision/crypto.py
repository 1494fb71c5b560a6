"""Symmetric encryption for secrets at rest (camera source URLs); Ed25519 signatures."""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.FIELD_ENCRYPTION_KEYS])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("cannot decrypt: wrong FIELD_ENCRYPTION_KEY?") from exc


# -- Ed25519 signatures (chain-of-custody manifests, recordings.custody) ---------------------


def new_signing_key_pem() -> str:
    """A fresh Ed25519 private key as unencrypted PKCS#8 PEM."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


@cache
def _signing_key(pem: str):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(pem.replace("\\n", "\n").encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("CUSTODY_SIGNING_KEY is not an Ed25519 private key")
    return key


def sign(data: bytes) -> bytes:
    """The platform's Ed25519 signature of ``data`` (settings.CUSTODY_SIGNING_KEY)."""
    return _signing_key(settings.CUSTODY_SIGNING_KEY).sign(data)


def public_key_pem() -> str:
    """The platform's Ed25519 public key (SubjectPublicKeyInfo PEM), as OpenSSL reads it."""
    from cryptography.hazmat.primitives import serialization

    public = _signing_key(settings.CUSTODY_SIGNING_KEY).public_key()
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def verify_signature(public_pem: str, signature: bytes, data: bytes) -> bool:
    """Whether ``signature`` is an Ed25519 signature of ``data`` by ``public_pem``'s key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
