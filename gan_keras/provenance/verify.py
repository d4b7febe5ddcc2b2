"""What an image carries: C2PA credentials, unsigned generation metadata, or nothing.

`verify_bytes(data)` returns a report (plain JSON):

    status            "signed" (a C2PA manifest that validates: state Valid or Trusted),
                      "invalid" (a manifest that does not: e.g. pixels changed after signing),
                      "unsigned" (only the unsigned metadata: a claim anyone can write or
                      strip), or "none"
    credentials       True when a C2PA manifest is present (valid or not)
    validation_state  c2pa's: "Trusted" (signer chains to a trust anchor given), "Valid"
                      (signature and hashes check; signer not in a trust list), "Invalid"
    pixels_match      False when the manifest's hash of the image data no longer matches,
                      True when it matches, None without a manifest
    trusted           whether the signer chains to `trust_anchors` (None without a manifest)
    signer            {"common_name", "issuer", "alg", "time"} from the manifest
    model, recipe, digital_source_type, software_agent: from the manifest, else from the
                      unsigned metadata
    failures          c2pa's failure codes and explanations
    summary           one line

`signed` is only ever set from c2pa's validation, never from the unsigned metadata.
"""

import io
import json

from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata

_MIME = {"png": "image/png", "gif": "image/gif", "jpeg": "image/jpeg"}
# Failure codes that mean the bytes the signature covers changed (c2pa-rs's).
_HASH_MISMATCH = ("assertion.dataHash.mismatch", "assertion.boxesHash.mismatch")
_HASH_MATCH = ("assertion.dataHash.match", "assertion.boxesHash.match")
# Not a failure of the image: the signer is not in a trust list (none given, or not in it).
UNTRUSTED = "signingCredential.untrusted"


def _reader_context(c2pa, trust_anchors: str | None):
    if not trust_anchors:
        return None
    settings = c2pa.Settings.from_dict(
        {"trust": {"trust_anchors": trust_anchors}, "verify": {"verify_trust": True}}
    )
    return c2pa.Context(settings=settings)


def _read_manifest(data: bytes, fmt: str | None, trust_anchors: str | None) -> dict | None:
    """{"state", "manifest", "results"} of the active C2PA manifest; None without one. Raises
    ImportError when c2pa-python is missing."""
    import c2pa

    try:
        reader = c2pa.Reader(
            _MIME.get(fmt, ""), io.BytesIO(data), context=_reader_context(c2pa, trust_anchors)
        )
    except c2pa.C2paError as e:
        text = f"{type(e).__name__} {e}"
        if any(s in text for s in ("ManifestNotFound", "JumbfNotFound", "NotSupported")):
            return None  # no manifest, or not a format that can carry one
        return {"state": "Invalid", "manifest": None, "results": {}, "error": str(e)}
    with reader:
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
        try:
            manifest = reader.get_active_manifest()
        except (c2pa.C2paError, KeyError, ValueError) as e:
            # A damaged manifest store: c2pa-python 0.38 raises KeyError("Active manifest not
            # found in manifest store") rather than a C2paError.
            return {
                "state": "Invalid",
                "manifest": None,
                "results": results,
                "error": f"{type(e).__name__}: {e}",
            }
        return {"state": state, "manifest": manifest, "results": results}


def _from_manifest(manifest: dict | None) -> dict:
    """The facts recorded in our assertion, else what c2pa.actions says."""
    if not manifest:
        return {}
    for assertion in manifest.get("assertions", []):
        if assertion.get("label") == facts_lib.ASSERTION_LABEL and isinstance(
            assertion.get("data"), dict
        ):
            return facts_lib.manifest_facts(assertion["data"])
    for assertion in manifest.get("assertions", []):
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            for action in (assertion.get("data") or {}).get("actions", []):
                if action.get("action") == "c2pa.created":
                    params = action.get("parameters") or {}
                    return {
                        "digital_source_type": action.get("digitalSourceType"),
                        "software_agent": action.get("softwareAgent"),
                        "model": params.get("model"),
                        "recipe": params.get("recipe"),
                    }
    return {}


def _codes(results: dict, kind: str) -> list[dict]:
    active = results.get("activeManifest") or {}
    return [entry for entry in active.get(kind, []) if isinstance(entry, dict)]


def verify_bytes(data: bytes, trust_anchors: str | None = None) -> dict:
    """The report of the module docstring for one image's bytes. `trust_anchors`: PEM text of
    the CA certificates to trust (without it no signer is "trusted", only "valid")."""
    fmt = metadata.image_format(data)
    report = {
        "format": fmt,
        "status": "none",
        "signed": False,
        "credentials": False,
        "validation_state": None,
        "pixels_match": None,
        "trusted": None,
        "signer": None,
        "failures": [],
        "unsigned_metadata": False,
    }
    try:
        read = _read_manifest(data, fmt, trust_anchors)
    except ImportError as e:
        read = None
        report["c2pa_unavailable"] = f"c2pa-python is not installed ({e}): credentials not read"
    found = {}
    if read is not None:
        failures = _codes(read["results"], "failure")
        successes = {entry.get("code") for entry in _codes(read["results"], "success")}
        failed = {entry.get("code") for entry in failures}
        state = read["state"]
        report.update(
            credentials=True,
            validation_state=state,
            signed=state in ("Valid", "Trusted"),
            trusted=state == "Trusted",
            failures=[
                {"code": f.get("code"), "explanation": f.get("explanation")} for f in failures
            ],
        )
        if read.get("error"):
            report["failures"].append({"code": "read_error", "explanation": read["error"]})
        if failed & set(_HASH_MISMATCH):
            report["pixels_match"] = False
        elif successes & set(_HASH_MATCH):
            report["pixels_match"] = True
        report["status"] = "signed" if report["signed"] else "invalid"
        manifest = read["manifest"] or {}
        info = manifest.get("signature_info") or {}
        report["signer"] = {
            "common_name": info.get("common_name"),
            "issuer": info.get("issuer"),
            "alg": info.get("alg"),
            "time": info.get("time"),
        }
        found = _from_manifest(manifest)
    unsigned = metadata.read_metadata(data)
    if unsigned is not None:
        report["unsigned_metadata"] = True
        if not found:
            found = unsigned["facts"] or {"digital_source_type": unsigned["digital_source_type"]}
            if report["status"] == "none":
                report["status"] = "unsigned"
    for key in ("digital_source_type", "software_agent", "model", "recipe", "created"):
        report[key] = found.get(key)
    report["summary"] = summarise(report)
    return report


def summarise(report: dict) -> str:
    model = report.get("model") or {}
    made_by = (
        f"model {model.get('name')} version {model.get('version')}"
        if model
        else "no model recorded"
    )
    generated = (
        "generated (trainedAlgorithmicMedia)"
        if report.get("digital_source_type") == facts_lib.DIGITAL_SOURCE_TYPE
        else f"digital source type {report.get('digital_source_type')}"
    )
    status = report["status"]
    if status == "signed":
        signer = report["signer"] or {}
        trust = "trusted signer" if report["trusted"] else "signer not in a trust list"
        pixels = {True: "pixels match", False: "PIXELS CHANGED", None: "pixels not checked"}[
            report["pixels_match"]
        ]
        return (
            f"signed C2PA credentials, {report['validation_state']}: signed by "
            f"{signer.get('common_name')} ({signer.get('issuer')}; {trust}); {generated} by "
            f"{made_by}; {pixels}"
        )
    if status == "invalid":
        pixels = (
            "the pixels changed after signing"
            if report["pixels_match"] is False
            else "; ".join(str(f["code"]) for f in report["failures"] if f["code"] != UNTRUSTED)
        )
        return f"INVALID C2PA credentials ({report['validation_state']}): {pixels}"
    if status == "unsigned":
        return (
            f"unsigned: {generated} by {made_by}, per metadata that anyone can write or strip "
            "(no content credentials)"
        )
    return "no provenance: no content credentials and no generation metadata"


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True)
