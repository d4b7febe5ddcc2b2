"""The command-line flags that sign images (`--c2pa_key`, `--c2pa_cert`), defined once.

`pipeline.generate` and `gan_keras.serve` both read them; absl refuses a flag defined twice in
one process, so they live here and both entry points import them.
"""

from absl import app, flags

from gan_keras.provenance import signing, stamp

C2PA_KEY = flags.DEFINE_string(
    "c2pa_key",
    None,
    "PEM private key that signs the C2PA content credentials of every image written or "
    "answered (with --c2pa_cert). Without both, images carry the same facts as unsigned "
    "metadata, and say they are unsigned.",
)
C2PA_CERT = flags.DEFINE_string(
    "c2pa_cert",
    None,
    "PEM certificate chain of --c2pa_key: the signing certificate first, then its issuers "
    "(docs/provenance.md says what C2PA requires of them).",
)


def stamper_from_flags() -> stamp.Stamper:
    """One stamper (and c2pa signer) for the process; a usage error for half a key pair or an
    unreadable one."""
    key, cert = C2PA_KEY.value, C2PA_CERT.value
    if (key is None) != (cert is None):
        given, missing = (
            ("--c2pa_key", "--c2pa_cert") if cert is None else ("--c2pa_cert", "--c2pa_key")
        )
        raise app.UsageError(
            f"Give both --c2pa_key and --c2pa_cert (or neither: unsigned): {given} needs {missing}"
        )
    if key is None:
        return stamp.Stamper()
    try:
        return stamp.Stamper(signing.C2paSigner(key, cert))
    except signing.SigningError as e:
        raise app.UsageError(f"--c2pa_key/--c2pa_cert: {e}") from None
