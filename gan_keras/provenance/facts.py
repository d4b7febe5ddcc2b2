"""What an image's provenance records, and the C2PA manifest definition that carries it.

The facts (one JSON object, `generation_facts`):

    digital_source_type  IPTC's http://cv.iptc.org/newscodes/digitalsourcetype/
                         trainedAlgorithmicMedia ("created by a model trained on sampled
                         content")
    software_agent       {"name": "gan_keras", "version": gan_keras.__version__}
    model                {"name", "version", "export_fingerprint"} of the exported version
    recipe               the request: signature, seed, truncation, edit direction and
                         strength, for image-to-image the input's sha256, ...
    created              UTC time, ISO 8601

`manifest_definition` turns them into a C2PA manifest: a `c2pa.actions` assertion whose
`c2pa.created` action carries the digital source type, the software agent and the recipe,
and an `org.gan_keras.generation` assertion with all the facts.
"""

import datetime
import hashlib
import json
import pathlib

import gan_keras

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
SOFTWARE_NAME = "gan_keras"
# The custom C2PA assertion (reverse-domain label) holding every fact.
ASSERTION_LABEL = "org.gan_keras.generation"
FACTS_VERSION = 1


def software_agent() -> dict:
    return {"name": SOFTWARE_NAME, "version": gan_keras.__version__}


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_fingerprint(model_dir) -> str:
    """sha256 over an exported version's graph and weights (saved_model.pb and every file under
    variables/, names and contents, in name order): it changes when the model does, and not
    when assets.extra (model card, evaluation) does. "sha256:<hex>"."""
    model_dir = pathlib.Path(model_dir)
    files = [model_dir / "saved_model.pb"]
    variables = model_dir / "variables"
    if variables.is_dir():
        files += sorted(p for p in variables.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for path in files:
        if not path.is_file():
            continue
        digest.update(path.relative_to(model_dir).as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(file_sha256(path)))
    return f"sha256:{digest.hexdigest()}"


def model_facts(model_dir, name: str | None = None) -> dict:
    """{"name", "version", "export_fingerprint"} of `<base>/<version>`: the name defaults to the
    base directory's name (what the model server calls it), the version to the directory's
    integer name (None if it is not one)."""
    model_dir = pathlib.Path(model_dir)
    try:
        version = int(model_dir.name)
    except ValueError:
        version = None
    return {
        "name": name or model_dir.parent.name or model_dir.name,
        "version": version,
        "export_fingerprint": export_fingerprint(model_dir),
    }


def recipe(signature: str, **fields) -> dict:
    """The request that made an image: the signature and its arguments (None ones dropped)."""
    return {"signature": signature, **{k: v for k, v in fields.items() if v is not None}}


def generation_facts(model: dict, recipe_: dict, created: datetime.datetime | None = None) -> dict:
    created = created or datetime.datetime.now(datetime.timezone.utc)
    return {
        "facts_version": FACTS_VERSION,
        "digital_source_type": DIGITAL_SOURCE_TYPE,
        "software_agent": software_agent(),
        "model": dict(model),
        "recipe": dict(recipe_),
        "created": created.astimezone(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def with_recipe(facts: dict, **fields) -> dict:
    """`facts` with more recipe fields (e.g. the image's index in a batch)."""
    return {**facts, "recipe": {**facts["recipe"], **fields}}


def _without_lists(value):
    """`value` with every list as its JSON text. c2pa-rs 0.91 stores assertion data as CBOR and
    mangles JSON arrays of numbers on the way (a list of small ints becomes a byte string, a
    list of floats an empty string), so the manifest never holds one."""
    if isinstance(value, dict):
        return {k: _without_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return value


def manifest_definition(facts: dict, title: str | None = None) -> dict:
    """The C2PA manifest definition (c2pa.Builder's JSON) recording `facts`. Lists in them
    are stored as JSON text, and the recipe also as `recipe_json` (exact; `manifest_facts`
    reads it back)."""
    facts = {
        **_without_lists(facts),
        "recipe_json": json.dumps(facts["recipe"], sort_keys=True),
    }
    agent = facts["software_agent"]
    manifest = {
        "claim_generator_info": [{"name": agent["name"], "version": agent["version"]}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": facts["digital_source_type"],
                            "softwareAgent": {"name": agent["name"], "version": agent["version"]},
                            "when": facts["created"],
                            "parameters": {
                                "model": facts["model"],
                                "recipe": facts["recipe"],
                            },
                        }
                    ]
                },
            },
            {"label": ASSERTION_LABEL, "data": facts},
        ],
    }
    if title:
        manifest["title"] = title
    return manifest


def manifest_facts(data: dict) -> dict:
    """The facts as `generation_facts` made them, from our assertion's data in a manifest."""
    facts = {k: v for k, v in data.items() if k != "recipe_json"}
    if isinstance(data.get("recipe_json"), str):
        try:
            facts["recipe"] = json.loads(data["recipe_json"])
        except ValueError:
            pass
    return facts
