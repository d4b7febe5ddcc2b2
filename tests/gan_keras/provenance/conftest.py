"""A throwaway test CA and a leaf signing certificate, made with `cryptography` (never a real key).

What C2PA (c2pa-rs, through c2pa-python) asks of a signing certificate, as in c2pa-python's
own test fixtures (tests/fixtures/es256_certs.pem: a leaf, then its intermediate and root):
X.509 v3, issued by a CA in the chain, basicConstraints CA:false, key usage
digitalSignature (critical), an extended key usage of emailProtection (or documentSigning,
timeStamping, OCSPSigning; not anyExtendedKeyUsage), subject and authority key identifiers.
The CA: basicConstraints CA:true, keyCertSign. Keys: EC P-256 (ES256).
"""

import dataclasses
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclasses.dataclass
class Credentials:
    key_path: object
    chain_path: object
    ca_pem: str
    ca_path: object
    self_signed_chain_path: object
    common_name: str = "gan_keras test signer"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "gan_keras tests"),
        ]
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(subject, issuer, public_key, issuer_key, issuer_public_key, now):
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def credentials(tmp_path_factory) -> Credentials:
    root = tmp_path_factory.mktemp("c2pa-test-ca")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("gan_keras test CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf_name = _name(Credentials.common_name)
    leaf = _leaf(leaf_name, ca_name, key.public_key(), ca_key, ca_key.public_key(), now)
    # The same key certified by itself: it signs, and no trust anchor vouches for it.
    self_signed = _leaf(leaf_name, leaf_name, key.public_key(), key, key.public_key(), now)
    key_path = root / "signer.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    chain_path = root / "chain.pem"
    chain_path.write_bytes(_pem(leaf) + _pem(ca))
    self_signed_path = root / "self_signed.pem"
    self_signed_path.write_bytes(_pem(self_signed))
    ca_path = root / "ca.pem"
    ca_path.write_bytes(_pem(ca))
    return Credentials(key_path, chain_path, _pem(ca).decode(), ca_path, self_signed_path)
