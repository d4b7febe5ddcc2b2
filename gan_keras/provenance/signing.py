"""C2PA content credentials, signed with the official c2pa-python bindings.

`C2paSigner(key_path, cert_path)` reads a PEM private key and the PEM certificate chain that
goes with it (the signing certificate first, then its issuers; C2PA wants key usage
digitalSignature and an extended key usage such as emailProtection or documentSigning, and a
verifier trusts the signer only when the chain ends at one of its trust anchors). The
algorithm follows the key: ES256/384/512 for EC
P-256/384/521, Ed25519, PS256 for RSA. `sign(data, mime, manifest)` returns the image's bytes
with the manifest embedded (c2pa.Builder); the manifest's hard binding covers every byte
outside it, so changing a pixel makes validation fail. No thumbnail is embedded (it would
add ~10x a small PNG's size).

c2pa-python is an optional dependency (`pip install gan-pipeline[provenance]`): importing this
module works without it, creating a signer says how to install it.
"""

import io
import pathlib
import threading

from gan_keras.provenance.facts import DIGITAL_SOURCE_TYPE

# MIME types this module signs (c2pa.Builder supports many more).
MIME_TYPES = {"png": "image/png", "gif": "image/gif"}


class SigningError(RuntimeError):
    """The key, the certificates or the c2pa library refused to sign."""


def _c2pa():
    try:
        import c2pa
    except ImportError as e:
        raise SigningError(
            f"signing needs the c2pa-python package ({e}): pip install "
            "'gan-pipeline[provenance]' (or: pip install c2pa-python)"
        ) from None
    return c2pa


def _algorithm(c2pa, key_pem: bytes):
    """c2pa.C2paSigningAlg for the private key's type."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as e:
        raise SigningError(f"cannot read the private key (unencrypted PEM expected): {e}") from None
    algs = c2pa.C2paSigningAlg
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": algs.ES256, "secp384r1": algs.ES384, "secp521r1": algs.ES512}
        if key.curve.name not in by_curve:
            raise SigningError(f"unsupported EC curve {key.curve.name} (P-256, P-384 or P-521)")
        return by_curve[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return algs.ED25519
    if isinstance(key, rsa.RSAPrivateKey):
        return algs.PS256
    raise SigningError(f"unsupported key type {type(key).__name__} (EC, Ed25519 or RSA)")


class C2paSigner:
    """Signs images with one key and certificate chain; `description` names the signer."""

    def __init__(self, key_path, cert_path, tsa_url: str | None = None):
        self._c2pa = _c2pa()
        try:
            self._key = pathlib.Path(key_path).read_bytes()
            self._chain = pathlib.Path(cert_path).read_bytes()
        except OSError as e:
            raise SigningError(f"cannot read the signing key or certificate chain: {e}") from None
        if b"-----BEGIN CERTIFICATE-----" not in self._chain:
            raise SigningError(f"{cert_path}: no PEM certificate in the chain file")
        self._alg = _algorithm(self._c2pa, self._key)
        self.description = self._subject(self._chain)
        settings = self._c2pa.Settings.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        self._context = self._c2pa.Context(settings=settings)
        # One c2pa.Signer for every image (making one per image costs ~0.7 ms); a lock, since
        # nothing promises that the bindings' signer may be shared between threads.
        self._lock = threading.Lock()
        try:
            info = self._c2pa.C2paSignerInfo(self._alg, self._chain, self._key, tsa_url)
            self._signer = self._c2pa.Signer.from_info(info)
        except self._c2pa.C2paError as e:
            raise SigningError(f"c2pa refused the key or certificate chain: {e}") from None
        # Fail now, on a 1x1 PNG, rather than after the first image is generated.
        self.sign(_TINY_PNG, "image/png", _PROBE_MANIFEST)

    @staticmethod
    def _subject(chain: bytes) -> str:
        from cryptography import x509

        try:
            return x509.load_pem_x509_certificate(chain).subject.rfc4514_string()
        except ValueError as e:
            raise SigningError(f"cannot read the signing certificate: {e}") from None

    def sign(self, data: bytes, mime: str, manifest: dict) -> bytes:
        """`data` with the C2PA manifest `manifest` (a manifest definition) embedded."""
        c2pa = self._c2pa
        out = io.BytesIO()
        try:
            with self._lock, c2pa.Builder(manifest, context=self._context) as builder:
                builder.sign(self._signer, mime, io.BytesIO(data), out)
        except c2pa.C2paError as e:
            raise SigningError(f"c2pa refused to sign: {e}") from None
        return out.getvalue()


# A valid 1x1 grayscale PNG and a minimal manifest: what the signer is tried on.
_PROBE_MANIFEST = {
    "assertions": [
        {
            "label": "c2pa.actions",
            "data": {
                "actions": [{"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE}]
            },
        },
    ]
}
_TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010800000000"
    "3a7e9b550000000a4944415478016360000000020001e221bc330000000049454e44ae426082"
)
