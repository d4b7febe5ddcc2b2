r"""Does an invisible watermark survive at this project's image sizes? Issue #32, measured.

    nice -n 19 .venv/bin/python -m benchmarks.watermark_survival [--images=200] \
        [--sizes=28,32,64,128,256] [--payloads=a53c960f,a53c] [--out_dir=runs/watermark]

Issue #32 asks for attribution that survives stripped metadata: a watermark, if one survives at
the sizes the generators make (28x28 grey Fashion-MNIST, 32x32 and 64x64 colour emoji and icons;
super-resolution up to 128x128). This embeds the `invisible-watermark` package's (`imwatermark`)
two classical marks, 'dwtDct' and 'dwtDctSvd', in real images of the project (Fashion-MNIST test
images, grey stored as RGB; Noto Emoji composited over white), each resized with LANCZOS to each
size, and decodes them after a lossless PNG round trip, JPEG quality 75 (Pillow's default 4:2:0
chroma subsampling), a 0.5x bicubic downscale and upscale back, and a conversion to greyscale (how
the 28x28 demo's images are stored: mode L). Per (dataset, method, payload, size) it reports the
mean bit accuracy, the share of images whose payload is recovered exactly, the share with at
least `--min_bits_fraction` of the bits right (28 of 32), and the embedding's PSNR against the
original. The same images decoded without a mark give the chance level: the false-positive rate
at that threshold. A number without that reference says nothing: both methods decode flat areas
(a white background, any grey image's chroma) as 0-bits, so a payload rich in zeros would be
"found" in unmarked images.

The library refuses images under 256x256 pixels (`WatermarkEncoder.encode` raises "image too
small"); each row records whether it accepted the size. Below that check (`--below_guard`, the
default) the rows measure the same algorithm through the classes `encode` calls after its check
(`imwatermark.maxDct.EmbedMaxDct`, `imwatermark.dwtDctSvd.EmbedDwtDctSvd`), which is what a
server that wanted a mark at 64 px would have to do; where the library accepts the size, the two
paths are checked to give the same image. Each bit is carried by 4x4 blocks of the half-size
wavelet band of the U (chroma) channel, so an NxN image has (N // 8)^2 blocks: fewer than the
payload's bits (28 and 32 px for 32 bits) and the bits without a block decode as 0 whatever was
embedded; the row's note says so. 'rivaGan' (a learned mark) is left out: its wrapper needs
torch (whose PyPI wheel is the CUDA build) for a few array operations around its ONNX models,
which it runs with onnxruntime.

`import imwatermark` imports torch through that rivaGan module even when only the dwt methods are
used; `import_imwatermark` stands a placeholder in for the package's own rivaGan module when torch
is absent, so the package installs with `pip install --no-deps invisible-watermark==0.2.0
opencv-python-headless PyWavelets` (beside NumPy and Pillow). Writes results.md and results.json
to --out_dir; the committed run (sizes 28,32,48,64,96,128,256) is in
benchmarks/results/watermark/ and docs/provenance.md ("Invisible watermark: where it survives").
"""

import gzip
import io
import json
import math
import pathlib
import sys
import time
import types
import warnings

import numpy as np
from absl import app, flags
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[1]
FLAGS = flags.FLAGS
FASHION_MNIST = pathlib.Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
NOTO_EMOJI = REPO / "data" / "noto-emoji"
METHODS = ("dwtDct", "dwtDctSvd")
LIBRARY_MIN_PIXELS = 256 * 256  # imwatermark.WatermarkEncoder.encode refuses fewer pixels


def import_imwatermark() -> types.ModuleType:
    """The `imwatermark` package, imported without torch when torch is not installed.

    Its __init__ imports watermark.py, which imports rivaGan.py, which imports torch at module
    level; the dwt methods use only OpenCV, PyWavelets and NumPy. Without torch a placeholder
    takes the place of the package's own rivaGan module (torch itself is left alone), whose
    RivaWatermark raises ImportError if used.
    """
    if "imwatermark" in sys.modules:
        return sys.modules["imwatermark"]
    try:
        import torch  # noqa: F401
    except ImportError:
        placeholder = types.ModuleType("imwatermark.rivaGan")

        class RivaWatermark:
            """rivaGan needs torch (not installed); dwtDct and dwtDctSvd do not."""

            def __init__(self, *args, **kwargs):
                raise ImportError("imwatermark's rivaGan method needs torch, not installed")

            @classmethod
            def loadModel(cls):
                cls()

        placeholder.RivaWatermark = RivaWatermark
        sys.modules["imwatermark.rivaGan"] = placeholder
    import imwatermark
    import imwatermark.dwtDctSvd
    import imwatermark.maxDct

    return imwatermark


def payload_bits(hex_payload: str) -> np.ndarray:
    """[bits] uint8 0/1, most significant bit first (as WatermarkEncoder.set_by_bytes)."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_payload), np.uint8))


def load_fashion_mnist(num: int, path: pathlib.Path = FASHION_MNIST) -> np.ndarray:
    """[num, 28, 28, 3] uint8: the first `num` test images, grey stored as RGB."""
    with gzip.open(path) as f:
        data = f.read()
    magic, count, rows, cols = np.frombuffer(data[:16], ">u4")
    if magic != 2051:
        raise ValueError(f"{path} is not an idx3 image file (magic {magic})")
    images = np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)[:num]
    return np.repeat(images[..., None], 3, axis=-1)


def load_noto_emoji(num: int, seed: int = 0, root: pathlib.Path = NOTO_EMOJI) -> np.ndarray:
    """[num, 64, 64, 3] uint8: `num` emoji drawn without replacement, composited over white."""
    paths = sorted(root.glob("*/*.png"))
    if len(paths) < num:
        raise ValueError(
            f"{root} has {len(paths)} PNGs, fewer than {num} (scripts/install_emoji.sh)"
        )
    chosen = np.sort(np.random.default_rng(seed).choice(len(paths), num, replace=False))
    images = []
    for i in chosen:
        with Image.open(paths[i]) as image:
            rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        images.append(np.asarray(Image.alpha_composite(white, rgba).convert("RGB")))
    return np.stack(images)


def resize(images: np.ndarray, size: int) -> np.ndarray:
    """[N, size, size, 3]: each image resized with LANCZOS (unchanged where it has the size)."""
    if images.shape[1:3] == (size, size):
        return images
    return np.stack(
        [np.asarray(Image.fromarray(x).resize((size, size), Image.LANCZOS)) for x in images]
    )


def _png(rgb: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _jpeg75(rgb: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=75)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _half_resize(rgb: np.ndarray) -> np.ndarray:
    image = Image.fromarray(rgb)
    small = image.resize((max(1, rgb.shape[1] // 2), max(1, rgb.shape[0] // 2)), Image.BICUBIC)
    return np.asarray(small.resize(image.size, Image.BICUBIC))


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L").convert("RGB"))


# name -> (what it does, RGB uint8 -> RGB uint8)
PERTURBATIONS = {
    "clean": ("PNG round trip", _png),
    "jpeg75": ("JPEG quality 75", _jpeg75),
    "resize0.5": ("0.5x bicubic down and up", _half_resize),
    "grey": ("stored as greyscale (mode L)", _grey),
}


def carrier_blocks(size: int) -> int:
    """4x4 blocks of the half-size Haar band of a size x size image: one bit each, in turn."""
    return ((size // 4 * 4) // 2 // 4) ** 2


def library_accepts(size: int) -> bool:
    return size * size >= LIBRARY_MIN_PIXELS


def _algorithm(method: str, bits, num_bits: int):
    wm = import_imwatermark()
    if method == "dwtDct":
        return wm.maxDct.EmbedMaxDct(list(bits), wmLen=num_bits)
    if method == "dwtDctSvd":
        return wm.dwtDctSvd.EmbedDwtDctSvd(list(bits), wmLen=num_bits)
    raise ValueError(f"method {method!r} is not measured here")


def embed(rgb: np.ndarray, method: str, bits: np.ndarray, below_guard: bool) -> np.ndarray:
    """The marked RGB uint8 image. Through WatermarkEncoder (which raises under 256x256 pixels)
    unless `below_guard`, when the encoder's algorithm class is called directly."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if below_guard:
        marked = _algorithm(method, bits, len(bits)).encode(bgr)
    else:
        encoder = import_imwatermark().WatermarkEncoder()
        encoder.set_watermark("bits", [int(b) for b in bits])
        marked = encoder.encode(bgr, method)
    return np.ascontiguousarray(marked[..., ::-1])


def decode(rgb: np.ndarray, method: str, num_bits: int, below_guard: bool) -> np.ndarray:
    """[num_bits] uint8 0/1 read from an RGB uint8 image (WatermarkDecoder, or below_guard its
    algorithm class). Bits without a carrier block come out 0: the library's mean of no scores
    is NaN, and NaN > 127 is False."""
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice"
        if below_guard:
            bits = _algorithm(method, [], num_bits).decode(bgr)
        else:
            bits = import_imwatermark().WatermarkDecoder("bits", num_bits).decode(bgr, method)
    return np.asarray(bits, np.uint8)


def bit_statistics(decoded: np.ndarray, bits: np.ndarray, min_bits: int) -> dict:
    """Mean bit accuracy, and the shares of images exactly right and with >= min_bits right."""
    right = (decoded == bits[None]).sum(axis=1)
    return {
        "mean_bit_accuracy": round(float(right.mean() / len(bits)), 4),
        "exact": round(float((right == len(bits)).mean()), 4),
        "detected": round(float((right >= min_bits).mean()), 4),
    }


def psnr(original: np.ndarray, marked: np.ndarray) -> float:
    """PSNR in dB over all images' pixels pooled (RGB, 0-255)."""
    mse = float(np.mean((original.astype(np.float64) - marked.astype(np.float64)) ** 2))
    return round(10 * math.log10(255.0**2 / mse), 2) if mse > 0 else math.inf


def library_status(rgb: np.ndarray, method: str, bits: np.ndarray) -> str:
    """'accepted' or 'refused: <the library's error>', for one image through WatermarkEncoder.

    Where accepted, the encoder's output must equal the algorithm class's (what the rows below
    the guard run), and so must its decode.
    """
    try:
        library = embed(rgb, method, bits, below_guard=False)
        library_bits = decode(library, method, len(bits), below_guard=False)
    except Exception as error:  # the library's refusal (RuntimeError "image too small, ...")
        return f"refused: {type(error).__name__}: {error}"
    direct = embed(rgb, method, bits, below_guard=True)
    if not np.array_equal(library, direct) or not np.array_equal(
        library_bits, decode(direct, method, len(bits), below_guard=True)
    ):
        raise AssertionError(f"{method}: WatermarkEncoder and its algorithm class differ")
    return "accepted"


def measure(
    images: np.ndarray,
    method: str,
    bits: np.ndarray,
    below_guard: bool = True,
    min_bits_fraction: float = 0.875,
    perturbations=tuple(PERTURBATIONS),
) -> dict:
    """One row: embed `bits` in every image, decode it after each perturbation, and decode the
    unmarked images the same way (the chance level). Never raises for a size the library
    refuses: the row says so and, unless below_guard, has no numbers."""
    size = images.shape[1]
    min_bits = math.ceil(min_bits_fraction * len(bits))
    blocks = carrier_blocks(size)
    row = {
        "size": size,
        "method": method,
        "payload_bits": len(bits),
        "min_bits": min_bits,
        "images": len(images),
        "library": library_status(images[0], method, bits),
        "carrier_blocks": blocks,
        "blocks_per_bit": round(blocks / len(bits), 2),
        "note": "",
    }
    if blocks < len(bits):
        row["note"] = (
            f"silent failure: {blocks} carrier blocks for {len(bits)} bits; "
            f"{len(bits) - blocks} bits decode as 0 whatever was embedded"
        )
    if row["library"] != "accepted" and not below_guard:
        return row
    start = time.perf_counter()
    marked = np.stack([embed(x, method, bits, below_guard) for x in images])
    row["psnr_db"] = psnr(images, marked)
    row["max_abs_change"] = int(np.abs(images.astype(int) - marked.astype(int)).max())
    row["perturbations"] = {}
    for name in perturbations:
        perturb = PERTURBATIONS[name][1]
        found = np.stack([decode(perturb(x), method, len(bits), below_guard) for x in marked])
        chance = np.stack([decode(perturb(x), method, len(bits), below_guard) for x in images])
        row["perturbations"][name] = {
            "marked": bit_statistics(found, bits, min_bits),
            "unmarked": bit_statistics(chance, bits, min_bits),
        }
    row["seconds"] = round(time.perf_counter() - start, 2)
    return row


def survives(row: dict, perturbation: str, exact: float, max_false_positive: float) -> bool:
    """Exact recovery in at least `exact` of the images, unmarked ones detected in at most
    `max_false_positive`, both after the perturbation."""
    stats = row.get("perturbations", {}).get(perturbation)
    return bool(
        stats
        and stats["marked"]["exact"] >= exact
        and stats["unmarked"]["detected"] <= max_false_positive
    )


def smallest_surviving(rows: list, perturbation: str, exact: float, max_fp: float):
    """The smallest size from which on (at every larger measured size too) the mark survives;
    None if it does not survive at the largest."""
    best = None
    for row in sorted(rows, key=lambda r: r["size"], reverse=True):
        if not survives(row, perturbation, exact, max_fp):
            break
        best = row["size"]
    return best


def _cell(stats: dict) -> str:
    return f"{stats['exact']:.2f} / {stats['detected']:.2f} / {stats['mean_bit_accuracy']:.3f}"


def markdown(result: dict) -> str:
    """The results table, the chance level beside it, and the smallest surviving sizes."""
    names = result["perturbations"]
    lines = [
        "# Invisible watermark survival (imwatermark dwtDct, dwtDctSvd)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"{result['images']} images per dataset and size. Each marked cell: share of images "
        "with the payload exactly recovered / share with at least "
        f"{result['min_bits_fraction']:.3g} of the bits right (28 of 32, 14 of 16) / mean bit "
        "accuracy. 'unmarked' is the same decode of the images without a mark (chance level): "
        "the highest detection share over the perturbations, and its mean bit accuracy. "
        "'library': whether WatermarkEncoder accepts the size; below 256x256 the numbers are the "
        "same algorithm through its classes. blocks/bit: carrier blocks per payload bit.",
        "",
        "| dataset | method | bits | size | library | blocks/bit | PSNR dB | "
        + " | ".join(PERTURBATIONS[n][0] for n in names)
        + " | unmarked detected / bit acc |",
        "|---|---|---|---|---|---|---|" + "---|" * len(names) + "---|",
    ]
    for row in result["rows"]:
        library = "accepted" if row["library"] == "accepted" else "refused"
        cells = [
            row["dataset"],
            row["method"],
            str(row["payload_bits"]),
            str(row["size"]),
            library,
            f"{row['blocks_per_bit']:g}",
        ]
        if "perturbations" not in row:
            cells += ["-"] * (len(names) + 2)
        else:
            cells.append(f"{row['psnr_db']:.1f}")
            stats = row["perturbations"]
            cells += [_cell(stats[n]["marked"]) for n in names]
            worst = max(names, key=lambda n: stats[n]["unmarked"]["detected"])
            cells.append(
                f"{stats[worst]['unmarked']['detected']:.3f} / "
                f"{stats[worst]['unmarked']['mean_bit_accuracy']:.3f}"
            )
        lines.append("| " + " | ".join(cells) + " |")
    refusals = sorted({r["library"] for r in result["rows"] if r["library"] != "accepted"})
    notes = sorted({r["note"] for r in result["rows"] if r["note"]})
    lines += [""] + [f"Library: {text}" for text in refusals]
    lines += [f"Note: {text}" for text in notes]
    lines += [
        "",
        f"## Smallest surviving size (exact recovery >= {result['survives_exact']:g} of images, "
        f"unmarked detected <= {result['max_false_positive']:g}, at it and every larger size)",
        "",
        "| dataset | method | bits | " + " | ".join(PERTURBATIONS[n][0] for n in names) + " |",
        "|---|---|---|" + "---|" * len(names),
    ]
    for key, smallest in result["smallest_surviving"].items():
        dataset, method, bits = key.split("/")
        cells = [str(smallest[n]) if smallest[n] else "none" for n in names]
        lines.append(f"| {dataset} | {method} | {bits} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run(
    datasets: dict,
    sizes,
    methods,
    payloads,
    below_guard=True,
    min_bits_fraction=0.875,
    survives_exact=0.9,
    max_false_positive=0.01,
    log=print,
) -> dict:
    """Every (dataset, method, payload, size) row and the smallest surviving sizes.
    `datasets` maps a name to its [N, H, W, 3] uint8 RGB images."""
    rows = []
    for dataset, images in datasets.items():
        for size in sizes:
            sized = resize(images, size)
            for method in methods:
                for hex_payload in payloads:
                    bits = payload_bits(hex_payload)
                    row = measure(sized, method, bits, below_guard, min_bits_fraction)
                    row = {"dataset": dataset, "payload": hex_payload, **row}
                    rows.append(row)
                    log(json.dumps({k: v for k, v in row.items() if k != "perturbations"}))
    smallest = {}
    for dataset in datasets:
        for method in methods:
            for hex_payload in payloads:
                group = [
                    r
                    for r in rows
                    if (r["dataset"], r["method"], r["payload"]) == (dataset, method, hex_payload)
                ]
                key = f"{dataset}/{method}/{len(payload_bits(hex_payload))}"
                smallest[key] = {
                    name: smallest_surviving(group, name, survives_exact, max_false_positive)
                    for name in PERTURBATIONS
                }
    return {
        "images": min(len(x) for x in datasets.values()),
        "perturbations": list(PERTURBATIONS),
        "min_bits_fraction": min_bits_fraction,
        "survives_exact": survives_exact,
        "max_false_positive": max_false_positive,
        "below_guard": below_guard,
        "rows": rows,
        "smallest_surviving": smallest,
    }


def define_flags() -> None:
    """The command line's flags, defined only when run as a program: other benchmarks that tests
    import into the same process define `images`, `seed` and `out_dir` too, and absl refuses a
    flag defined twice."""
    flags.DEFINE_integer("images", 200, "Images per dataset (and size).")
    flags.DEFINE_list("sizes", ["28", "32", "64", "128", "256"], "Square sizes, pixels.")
    flags.DEFINE_list(
        "payloads", ["a53c960f", "a53c"], "Payloads in hex (32 and 16 bits, half of them ones)."
    )
    flags.DEFINE_list("datasets", ["fashion_mnist", "noto_emoji"], "Which image sets.")
    flags.DEFINE_list("methods", list(METHODS), "imwatermark methods.")
    flags.DEFINE_boolean(
        "below_guard", True, "Measure sizes the library refuses through its embedding classes."
    )
    flags.DEFINE_float(
        "min_bits_fraction", 0.875, "Share of the bits that must be right to count as detected."
    )
    flags.DEFINE_float(
        "survives_exact", 0.9, "Exact-recovery share at which a mark counts as surviving."
    )
    flags.DEFINE_float(
        "max_false_positive", 0.01, "Highest unmarked detection rate at which it still counts."
    )
    flags.DEFINE_string("out_dir", "runs/watermark", "Where results.md/.json go.")
    flags.DEFINE_integer("seed", 0, "Which emoji are drawn.")


def main(argv):
    del argv
    loaders = {
        "fashion_mnist": lambda: load_fashion_mnist(FLAGS.images),
        "noto_emoji": lambda: load_noto_emoji(FLAGS.images, FLAGS.seed),
    }
    datasets = {name: loaders[name]() for name in FLAGS.datasets}
    import_imwatermark()
    result = run(
        datasets,
        [int(s) for s in FLAGS.sizes],
        FLAGS.methods,
        FLAGS.payloads,
        FLAGS.below_guard,
        FLAGS.min_bits_fraction,
        FLAGS.survives_exact,
        FLAGS.max_false_positive,
    )
    import cv2

    result["command"] = "python -m benchmarks.watermark_survival " + " ".join(sys.argv[1:])
    result["versions"] = {
        "invisible-watermark": _version("invisible-watermark"),
        "opencv": cv2.__version__,
        "PyWavelets": _version("PyWavelets"),
        "numpy": np.__version__,
        "pillow": Image.__version__,
        # Without torch the package's rivaGan module is import_imwatermark's placeholder.
        "torch": "torch" in sys.modules,
    }
    out = pathlib.Path(FLAGS.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "results.md").write_text(markdown(result))
    print(markdown(result))


def _version(distribution: str) -> str:
    from importlib import metadata

    return metadata.version(distribution)


if __name__ == "__main__":
    define_flags()
    app.run(main)
