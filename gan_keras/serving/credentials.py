"""Provenance on every image the REST API answers with, and the :verify endpoint's report.

`ServerProvenance(stamper)` stamps the PNGs and GIFs of :sample, :interpolate, :edit,
:transform and :project's reconstruction, and those :predict answers in `_bytes` outputs over
REST and gRPC (the `*_png` signatures), with gan_keras.provenance's facts: the served model
(name as in the URL, version, export fingerprint; the fingerprint is hashed once per loaded
version and kept while it is loaded) and the request's recipe. With a signing Stamper the
answer carries C2PA content credentials, else the unsigned metadata (XMP + PNG text / GIF
comment), and the app logs once, when created, that its images are unsigned.

`verify_body(data, servable, name)` is :verify's answer: gan_keras.provenance.verify's report
(what `gan-verify --json` prints for one file) plus "served_model", whether the image's
recorded export fingerprint is the one of the version that answered.
"""

import hashlib
import logging
import threading
import weakref

import numpy as np

from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata, signing, verify
from gan_keras.provenance.stamp import Stamper
from gan_keras.serving.codec import BINARY_OUTPUT_SUFFIX, ServingError

logger = logging.getLogger(__name__)

# Formats :verify reads (credentials in all three; the unsigned metadata in PNG and GIF).
VERIFY_FORMATS = ("png", "gif", "jpeg")


class ServerProvenance:
    """The stamper of one app and the fingerprints of the versions it has answered for.

    `stamper=None` stamps nothing: only for measuring what stamping costs
    (benchmarks/provenance_latency.py); the server always stamps.
    """

    def __init__(self, stamper: Stamper | None, trust_anchors: str | None = None):
        self.stamper = stamper
        self.trust_anchors = trust_anchors  # PEM text of the CAs :verify trusts
        self._fingerprints = weakref.WeakKeyDictionary()  # Servable -> "sha256:..."
        self._lock = threading.Lock()

    def log_mode(self) -> None:
        if self.stamper is None:
            logger.warning("Images are returned WITHOUT provenance (stamping disabled)")
        elif self.stamper.signed:
            logger.info("Images carry %s", self.stamper.describe())
        else:
            logger.warning(
                "Images carry %s: they are NOT signed (give --c2pa_key and --c2pa_cert to "
                "sign them)",
                self.stamper.describe(),
            )

    def fingerprint(self, servable) -> str:
        """The export fingerprint of a loaded version, hashed on first use only."""
        with self._lock:
            found = self._fingerprints.get(servable)
        if found is None:
            found = facts_lib.export_fingerprint(servable.path)
            with self._lock:
                self._fingerprints[servable] = found
        return found

    def model(self, servable, name: str) -> dict:
        return {
            "name": name,
            "version": servable.version,
            "export_fingerprint": self.fingerprint(servable),
        }

    def stamp(self, data: bytes, servable, name: str, signature: str, **recipe) -> bytes:
        """`data` (PNG or GIF) carrying this request's facts; a 500 if they cannot be written
        (no image leaves without them)."""
        if self.stamper is None:
            return data
        facts = facts_lib.generation_facts(
            self.model(servable, name), facts_lib.recipe(signature, **recipe)
        )
        try:
            return self.stamper.stamp(data, facts)
        except (signing.SigningError, ValueError) as e:
            logger.error("Provenance not written for %s:%s: %s", name, signature, e)
            raise ServingError(f"could not write the image's provenance: {e}", 500) from None

    def stamps(self, outputs: dict) -> bool:
        """Whether `stamp_outputs` has anything to do for these outputs (it may take a while)."""
        return self.stamper is not None and any(k.endswith(BINARY_OUTPUT_SUFFIX) for k in outputs)

    def stamp_outputs(self, outputs: dict, servable, name: str, signature: str, inputs: dict):
        """`outputs` of a :predict (REST or gRPC) with every PNG or GIF in a `_bytes` output (the
        `*_png` signatures' answers) stamped: the recipe names the signature, the hash of the
        request's inputs and the image's index in the answer, since a predict request has no
        seed to record. Other outputs, and bytes that are not an image, are left as they are."""
        if not self.stamps(outputs):
            return outputs
        keys = [k for k in outputs if k.endswith(BINARY_OUTPUT_SUFFIX)]
        digest = hashlib.sha256()
        for key in sorted(inputs):
            value = np.asarray(inputs[key])
            digest.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
            if value.dtype != object:
                digest.update(np.ascontiguousarray(value).tobytes())
            else:
                digest.update(b"".join(bytes(v) for v in value.reshape(-1)))
        input_sha256 = digest.hexdigest()
        stamped = dict(outputs)
        for key in keys:
            values = np.array(outputs[key], dtype=object)
            flat = values.reshape(-1)
            for index, data in enumerate(flat):
                if isinstance(data, bytes) and metadata.image_format(data) in ("png", "gif"):
                    flat[index] = self.stamp(
                        data,
                        servable,
                        name,
                        signature,
                        endpoint="predict",
                        input_sha256=input_sha256,
                        index=index,
                    )
            stamped[key] = values
        return stamped

    def verify_body(self, data: bytes, servable, name: str) -> dict:
        """:verify's JSON answer for an image body; a 400 for anything but an image."""
        if not data:
            raise ServingError("request body is empty: POST the image (PNG, GIF or JPEG)")
        fmt = metadata.image_format(data)
        if fmt not in VERIFY_FORMATS:
            raise ServingError(
                "request body is not a PNG, GIF or JPEG image (send the file's bytes as the "
                "body: curl --data-binary @image.png -H 'Content-Type: image/png')"
            )
        try:
            report = verify.verify_bytes(data, trust_anchors=self.trust_anchors)
        except (ValueError, IndexError, OverflowError) as e:  # a damaged file
            raise ServingError(f"request body: cannot read this {fmt} file: {e}") from None
        recorded = (report.get("model") or {}).get("export_fingerprint")
        fingerprint = self.fingerprint(servable)
        report["served_model"] = {
            "name": name,
            "version": servable.version,
            "export_fingerprint": fingerprint,
            # Only the recorded fingerprint is compared: with status "unsigned" or "none"
            # that is a claim anyone could have written.
            "fingerprint_matches": None if recorded is None else recorded == fingerprint,
        }
        return report
