"""The REST endpoints answering with images: :sample, :interpolate, :edit, :project, :transform.

Each reads its query parameters (a 400 naming the one at fault) and the PNG
body, checks them against the model and this server's --max_batch, and runs
gan_keras.client on the resolved version. The routes and the endpoint list are
gan_keras.serving.app's.

Every image answered (and :project's reconstruction) goes through `stamp(data, signature,
**recipe)` first: gan_keras.serving.credentials writes the model's facts and the request's
recipe into it (signed C2PA credentials, or the unsigned metadata).
"""

import base64
from collections.abc import Callable

import numpy as np
from flask import Response, request

from gan_keras import images as gan_images
from gan_keras.client import image_files, sampling, transform
from gan_keras.client.model import (
    RequestError,
    image_shape,
    require_image_to_image,
    require_signature,
    task_name,
)
from gan_keras.provenance import facts as facts_lib
from gan_keras.serving import codec
from gan_keras.serving.codec import ServingError
from gan_keras.serving.responses import image_response, json_response
from gan_keras.serving.versions import Servable

MAX_INTERPOLATION_STEPS = 256
MAX_EDIT_STRENGTHS = 64
DEFAULT_EDIT_NUM = 4
GIF_FRAME_MS_RANGE = (20, 10_000)
INT64_RANGE = (-(2**63), 2**63 - 1)

# stamp(image bytes, signature name, **recipe) -> the bytes carrying their provenance.
Stamp = Callable[..., bytes]


def _int_arg(name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ServingError(f"query parameter {name}={raw!r} is not an integer") from None


def _int_param(
    name: str,
    default: int | None = None,
    *,
    required: bool = False,
    low: int | None = None,
    high: int | None = None,
) -> int | None:
    """An integer query parameter; missing, malformed or out of [low, high] -> 400 naming it."""
    value = _int_arg(name, default)
    if value is None:
        if required:
            raise ServingError(f"query parameter {name} is required")
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ServingError(f"query parameter {name} must be in [{low}, {high}], got {value}")
    return value


def _seed_param(name: str, default: int | None = None, required: bool = False) -> int:
    value = _int_arg(name, default)
    if value is None:
        if required:
            raise ServingError(f"query parameter {name} is required")
        return value
    if not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
        raise ServingError(f"query parameter {name}={value} does not fit in int64")
    return value


def _truncation_param(servable: Servable) -> float | None:
    raw = request.args.get("truncation")
    if raw is None or raw == "":
        return None
    try:
        psi = float(raw)
    except ValueError:
        raise ServingError(f"query parameter truncation={raw!r} is not a number") from None
    if not 0.0 <= psi <= 1.0:  # NaN fails too
        raise ServingError(f"query parameter truncation must be in [0, 1], got {raw}")
    require_signature(servable, "truncated_sample")
    return psi


def _label_param(
    servable: Servable, name: str, signature_name: str, required: bool = False
) -> int | None:
    """A label query parameter: in range for conditional models, absent for unconditional ones."""
    label = _int_arg(name, None)
    sampling.check_label(servable, label, name, required=required, signature_name=signature_name)
    return label


def _known_params(*names: str) -> None:
    unknown = set(request.args) - set(names)
    if unknown:
        raise ServingError(f"unknown query parameters {sorted(unknown)}: use {', '.join(names)}")


def sample_endpoint(servable: Servable, max_batch: int, stamp: Stamp) -> Response:
    if "sample" not in servable.signatures:
        raise ServingError("this model has no 'sample' signature")
    n, seed = _int_arg("n", 16), _int_arg("seed", 0)
    label, rows = _int_arg("label", None), _int_arg("rows", None)
    unknown = set(request.args) - {"n", "seed", "label", "rows", "truncation"}
    if unknown:
        raise ServingError(
            f"unknown query parameters {sorted(unknown)}: use n, seed, label, rows, truncation"
        )
    if rows is not None and rows < 1:
        raise ServingError(f"rows must be >= 1, got {rows}")
    truncation = _truncation_param(servable)
    inputs = {
        "num_samples": np.int32(min(max(n, 0), 2**31 - 1)),
        "seed": np.int64(seed) if -(2**63) <= seed < 2**63 else None,
    }
    if inputs["seed"] is None:
        raise ServingError(f"seed={seed} does not fit in int64")
    conditional = "label" in servable.input_specs["sample"]
    if label is not None and not conditional:
        raise ServingError("this model is unconditional: it takes no label")
    if conditional:
        inputs["label"] = np.array([] if label is None else [label], np.int64)
    codec.check_limits(inputs, servable, max_batch)
    images = sampling.sample_images(servable, num=n, seed=seed, label=label, truncation=truncation)
    rows = rows if rows is None else min(rows, n)
    grid = gan_images.make_grid(images, rows=rows)
    png = stamp(
        gan_images.encode_png(grid),
        "sample" if truncation is None else "truncated_sample",
        endpoint="sample",
        layout="grid",
        seed=seed,
        num=n,
        label=label,
        truncation=truncation,
        rows=rows,
    )
    return image_response(png, "image/png", servable)


def interpolate_endpoint(servable: Servable, max_batch: int, stamp: Stamp) -> Response:
    _known_params("seed_a", "seed_b", "steps", "format", "label_a", "label_b", "duration_ms")
    require_signature(servable, "interpolate")
    seed_a = _seed_param("seed_a", required=True)
    seed_b = _seed_param("seed_b", required=True)
    steps = _int_param(
        "steps", sampling.DEFAULT_INTERPOLATION_STEPS, low=2, high=MAX_INTERPOLATION_STEPS
    )
    if steps > max_batch:
        raise ServingError(
            f"query parameter steps={steps} is more than this server's --max_batch={max_batch}"
        )
    image_format = request.args.get("format") or "png"
    if image_format.lower() not in ("png", "gif"):
        raise ServingError(f"query parameter format must be png or gif, got {image_format!r}")
    image_format = image_format.lower()
    duration_ms = _int_param(
        "duration_ms", None, low=GIF_FRAME_MS_RANGE[0], high=GIF_FRAME_MS_RANGE[1]
    )
    if duration_ms is not None and image_format != "gif":
        raise ServingError("query parameter duration_ms applies only to format=gif")
    label_a = _label_param(servable, "label_a", "interpolate", required=True)
    label_b = _label_param(servable, "label_b", "interpolate", required=True)
    images = sampling.interpolate_images(
        servable, seed_a=seed_a, seed_b=seed_b, steps=steps, label_a=label_a, label_b=label_b
    )
    recipe = {
        "endpoint": "interpolate",
        "layout": "walk",
        "seed_a": seed_a,
        "seed_b": seed_b,
        "steps": steps,
        "label_a": label_a,
        "label_b": label_b,
        "format": image_format,
    }
    if image_format == "gif":
        duration_ms = duration_ms or image_files.DEFAULT_GIF_FRAME_MS
        data = image_files.encode_gif(images, duration_ms)
        data = stamp(data, "interpolate", duration_ms=duration_ms, **recipe)
        return image_response(data, "image/gif", servable)
    data = stamp(image_files.strip_png(images), "interpolate", **recipe)
    return image_response(data, "image/png", servable)


def edit_endpoint(
    servable: Servable, max_batch: int, entries: list[dict], stamp: Stamp
) -> Response:
    _known_params("direction", "seed", "num", "strengths", "label", "truncation")
    require_signature(servable, "edit")
    require_signature(servable, "truncated_sample")
    seed = _seed_param("seed", 0)
    raw_direction = request.args.get("direction")
    if raw_direction is None or raw_direction.strip() == "":
        names = ", ".join(entry["name"] for entry in entries) or "indices"
        raise ServingError(f"query parameter direction is required (a name or index: {names})")
    try:
        direction = sampling.resolve_direction(raw_direction, entries)
    except RequestError as e:
        raise ServingError(f"query parameter direction: {e}") from None
    raw_strengths = request.args.get("strengths") or ",".join(
        f"{s:g}" for s in sampling.DEFAULT_EDIT_STRENGTHS
    )
    strengths = sampling.parse_floats(raw_strengths, "query parameter strengths")
    if len(strengths) > MAX_EDIT_STRENGTHS:
        raise ServingError(
            f"query parameter strengths has {len(strengths)} values; at most {MAX_EDIT_STRENGTHS}"
        )
    num = _int_param("num", DEFAULT_EDIT_NUM, low=1, high=max_batch)
    if num * len(strengths) > max_batch:
        raise ServingError(
            f"query parameters num x strengths = {num} x {len(strengths)} images "
            f"is more than this server's --max_batch={max_batch}"
        )
    label = _label_param(servable, "label", "edit")
    truncation = _truncation_param(servable)
    images = sampling.edit_images(
        servable,
        num=num,
        seed=seed,
        direction=direction,
        strengths=strengths,
        label=label,
        truncation=truncation,
    )
    png = stamp(
        gan_images.encode_png(image_files.edit_grid(images)),
        "edit",
        endpoint="edit",
        layout="grid",
        seed=seed,
        num=num,
        direction=raw_direction,
        direction_index=direction,
        strengths=strengths,
        label=label,
        truncation=truncation,
    )
    return image_response(png, "image/png", servable)


def project_endpoint(servable: Servable, stamp: Stamp) -> Response:
    _known_params("steps", "label")
    require_signature(servable, "project")
    steps = _int_param("steps", sampling.DEFAULT_PROJECT_STEPS, low=0, high=codec.MAX_PROJECT_STEPS)
    label = _label_param(servable, "label", "project", required=True)
    mimetype = request.mimetype or ""
    if mimetype.startswith("multipart/"):
        raise ServingError(
            "send the PNG as the raw request body (curl --data-binary "
            "@image.png -H 'Content-Type: image/png'), not as a form"
        )
    body = request.get_data(cache=False)
    if mimetype == "application/json" or body.lstrip()[:1] in (b"{", b"["):
        raise ServingError(
            'this endpoint takes a PNG body; send JSON to :predict with "signature_name": "project"'
        )
    shape = image_shape(servable)
    try:
        image = image_files.decode_png(body, shape)
    except RequestError as e:
        raise ServingError(f"request body: {e}") from None
    out = sampling.project_image(servable, image, steps=steps, label=label)
    space = sampling.control_space(servable)  # "z", or "w" for a StyleGAN2 generator
    png = stamp(
        gan_images.encode_png(out["reconstruction"]),
        "project",
        endpoint="project",
        input_sha256=facts_lib.sha256_hex(body),
        steps=steps,
        label=label,
    )
    response = json_response(
        {
            space: codec.json_floats(out[space]),
            "psnr": sampling.psnr_for_json(out["psnr"]),
            "reconstruction_png_b64": base64.b64encode(png).decode("ascii"),
        }
    )
    response.headers["X-Model-Version"] = str(servable.version)
    return response


def _transform_request(servable: Servable, shapes: dict) -> dict[str, bytes]:
    """{"image": PNG bytes(, "mask": PNG bytes)} from a raw PNG body or a multipart form."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        files, form = request.files, request.form
        text_fields = sorted(set(form) & {"image", "mask"})
        if text_fields:
            raise ServingError(
                f"form field {text_fields[0]!r} must be a file part (curl -F "
                f"{text_fields[0]}=@{text_fields[0]}.png), not text"
            )
        unknown = sorted((set(files) | set(form)) - {"image", "mask"})
        if unknown:
            raise ServingError(f"unknown form fields {unknown}: use image and mask")
        repeated = [name for name in files if len(files.getlist(name)) > 1]
        if repeated:
            raise ServingError(
                f"form field {repeated[0]!r} given more than once: :transform "
                "takes one image per request"
            )
        data = {name: files[name].read() for name in files}
        if "image" not in data:
            raise ServingError(
                f"form field 'image' is missing ({transform.describe_transform_inputs(servable)})"
            )
        return data
    if mimetype.startswith("multipart/") or mimetype == "application/x-www-form-urlencoded":
        raise ServingError(
            f"send the PNG as the raw body (Content-Type: image/png) or as "
            f"multipart/form-data file fields, not {mimetype}"
        )
    body = request.get_data(cache=False)
    if mimetype == "application/json" or body.lstrip()[:1] in (b"{", b"["):
        raise ServingError(
            'this endpoint takes a PNG body; send JSON to :predict (signature "serving_default")'
        )
    if "mask" in shapes:
        raise ServingError(
            f"this {task_name(servable)} model needs a mask: send multipart/form-data "
            "with file fields image and mask (curl -F image=@in.png -F mask=@mask.png); "
            f"{transform.describe_transform_inputs(servable)}"
        )
    return {"image": body}


def transform_endpoint(servable: Servable, stamp: Stamp) -> Response:
    require_image_to_image(
        servable, ":transform", "use :sample, :interpolate, :edit or :project (or :predict)"
    )
    if request.args:
        raise ServingError(f":transform takes no query parameters, got {sorted(request.args)}")
    shapes = transform.transform_input_shapes(servable)
    limit = codec.transform_body_limit(shapes)
    if limit is not None:
        if request.content_length is not None and request.content_length > limit:
            raise ServingError(
                f"request body of {request.content_length} bytes is over this "
                f"model's :transform limit of {limit} bytes",
                413,
            )
        # Bodies without a Content-Length are cut off at the limit too (werkzeug answers 413).
        request.max_content_length = min(limit, request.max_content_length or limit)
    data = _transform_request(servable, shapes)
    png = transform.transform_png(servable, data["image"], data.get("mask"))
    png = stamp(
        png,
        "transform",
        endpoint="transform",
        task=task_name(servable),
        input_sha256=facts_lib.sha256_hex(data["image"]),
        mask_sha256=facts_lib.sha256_hex(data["mask"]) if "mask" in data else None,
    )
    return image_response(png, "image/png", servable)
