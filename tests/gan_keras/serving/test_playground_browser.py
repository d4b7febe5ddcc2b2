"""The playground in a real headless Chromium (selenium), against a real server on loopback.

One server (the REST server, on a thread) serves six tiny exports: a sampling model with named
directions, a model card and an evaluation; a conditional one; a StyleGAN2 export (style
mixing); super-resolution and inpainting models. One browser runs every scenario. Each
scenario checks what the page shows against the API's own answers and that the browser
logged no error, and saves a screenshot (into PLAYGROUND_SCREENSHOT_DIR when set, e.g.
docs/images/playground/).

Needs Debian's chromium and chromium-driver (scripts/test.sh installs them): without them
these tests fail, saying so, rather than skip.
"""

import io
import json
import os
import pathlib
import shutil
import struct
import time
import zlib

import helpers
import numpy as np
import pytest
import requests
from PIL import Image

from gan_keras import images as gan_images
from gan_keras.export import sampling_model as gan_export
from gan_keras.export import transform_model
from gan_keras.export.layout import EVALUATION_ASSET, MODEL_CARD_ASSET
from gan_keras.models import pix2pix, stylegan2
from gan_keras.serving import app as serving_app
from gan_keras.serving.models import ServedModels
from gan_keras.tasks import baselines

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
LATENT = 8
WAIT = 30  # seconds any one condition may take
TRADE_OFF = [(1, 7.9, 0.7, 0.5), (0.7, 11.2, 0.8, 0.35), (0.5, 20.1, 0.9, 0.2)]
EVALUATION = {
    "summary": "FD 7.9: real-data floor 0.32, noise 95; 500 samples, domain_classifier features",
    "frechet_distance": 7.9,
    "blessed": True,
    "gate": {"reason": "frechet_distance=7.9 is at most the threshold 10"},
    "controls": {
        "truncation": {
            "rows": [
                dict(zip(("psi", "frechet_distance", "precision", "recall"), row, strict=True))
                for row in TRADE_OFF
            ]
        },
        "nearest_neighbours": {"ratio": 1.4, "samples_closer_than_real_eval_5th_percentile": 0.03},
    },
}
CARD = "# Model card: `generate` model\n\n## Evaluation\n\n- Summary: FD 7.9\n- Judge: `x`.\n"


def _task(name):
    return helpers.task_config(name, scale=2)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("playground")
    gan_export.export_generator(
        helpers.tiny_generator(False, latent_dim=LATENT),
        root / "gen",
        latent_dim=LATENT,
        directions={"towards_x": np.ones(LATENT, np.float32)},
        extra_assets={EVALUATION_ASSET: json.dumps(EVALUATION), MODEL_CARD_ASSET: CARD},
    )
    conditional = helpers.tiny_generator(True, latent_dim=LATENT, num_classes=3)
    gan_export.export_generator(conditional, root / "cond", latent_dim=LATENT, num_classes=3)
    import keras

    keras.utils.set_random_seed(1)
    style = stylegan2.build_generator(
        resolution=16, channels=1, latent_dim=LATENT, width=4, w_dim=16, mapping_layers=2
    )
    gan_export.export_generator(style, root / "style", latent_dim=LATENT)
    sr = pix2pix.build_unet_generator(condition_shape=(8, 8, 1), image_shape=(16, 16, 1), width=8)
    transform_model.export_image_to_image(sr, root / "sr", task_config=_task("super_resolution"))
    inpaint = pix2pix.build_unet_generator(
        condition_shape=(16, 16, 4), image_shape=(16, 16, 3), width=8, inpainting=True
    )
    transform_model.export_image_to_image(
        inpaint, root / "inpaint", task_config=_task("inpainting")
    )
    config = root / "models.config"
    entries = [
        f'config {{ name: "{n}" base_path: "{root / n}" }}'
        for n in ("gen", "cond", "style", "sr", "inpaint")
    ]
    config.write_text("model_config_list {\n" + "\n".join(entries) + "\n}\n")
    models = ServedModels.from_config_file(config, file_system_poll_seconds=0)
    flask_app = serving_app.create_app(registry=models, max_batch=32)
    with helpers.RestServerThread(flask_app, threads=4) as running:
        yield running
    models.stop()


@pytest.fixture(scope="module")
def browser():
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the playground's browser tests need Debian's "
            "chromium and chromium-driver (bash scripts/test.sh installs them; or "
            "apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1600")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = os.environ.get("PLAYGROUND_SCREENSHOT_DIR")
    folder = pathlib.Path(folder) if folder else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(server, browser, shots, request):
    """The browser, with helpers; after the test: a screenshot, and no console errors."""
    browser.get_log("browser")  # drop what earlier tests left
    helper = Page(browser, server.url, shots)
    yield helper
    helper.shot(request.node.name.removeprefix("test_"))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert [e["message"] for e in errors if not helper.expected(e["message"])] == []


class Page:
    """The browser on the playground, with what the scenarios ask of it."""

    def __init__(self, driver, url, shots):
        self.driver, self.url, self.shots, self.allowed = driver, url, shots, []

    def shot(self, name):
        self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def expected(self, message):
        return any(fragment in message for fragment in self.allowed)

    def open(self, path):
        self.driver.get(self.url + path)
        self.wait(lambda: self.js("return document.body.dataset.ready") in ("true", "error"))
        assert self.js("return document.body.dataset.ready") == "true", self.text("error")

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def wait(self, condition, what="the page"):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; page error: {self.text('error')!r}")

    def find(self, css):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def attr(self, css, name):
        return self.find(css).get_attribute(name) or ""

    def text(self, element_id):
        return self.js("return document.getElementById(arguments[0])?.textContent", element_id)

    def data(self, element_id, key):
        script = "return document.getElementById(arguments[0]).dataset[arguments[1]]"
        return self.js(script, element_id, key)

    def wait_data(self, element_id, key, value):
        self.wait(lambda: self.data(element_id, key) == value, f"#{element_id}[data-{key}={value}]")

    def wait_url(self, fragment):
        """Waits for the address bar (updated at most every 100 ms) to hold `fragment`."""
        self.wait(lambda: fragment in self.driver.current_url, f"{fragment} in the address")

    def idle(self):
        """Waits until no render is in flight."""
        self.wait(lambda: self.js("return document.getElementById('grid').ariaBusy") == "false")

    def keys(self, css, *keys):
        element = self.find(css)
        element.send_keys(*keys)
        return element

    def pixels(self, css, index=0) -> np.ndarray:
        """The pixels of the `index`-th <img> matching `css`, at its natural size, read back
        through a canvas: [H, W] for a grey image, [H, W, 3] for a colour one. (Not by
        fetching its blob: URL, which the page's CSP rightly forbids.)"""
        rgba = self._rgba("document.querySelectorAll(arguments[0])[arguments[1]]", css, index)
        assert np.all(rgba[..., 3] == 255)
        grey = np.all(rgba[..., 0] == rgba[..., 1]) and np.all(rgba[..., 1] == rgba[..., 2])
        return rgba[..., 0] if grey else rgba[..., :3]

    def canvas(self, element_id) -> np.ndarray:
        """A canvas's RGBA pixels [H, W, 4]."""
        return self._rgba("document.getElementById(arguments[0])", element_id)

    def _rgba(self, source, *args):
        w, h, flat = self.js(
            f"""const source = {source};
            const c = document.createElement('canvas');
            c.width = source.naturalWidth || source.width;
            c.height = source.naturalHeight || source.height;
            const g = c.getContext('2d');
            g.drawImage(source, 0, 0);
            const data = g.getImageData(0, 0, c.width, c.height).data;
            return [c.width, c.height, Array.from(data)];""",
            *args,
        )
        return np.array(flat, np.uint8).reshape(h, w, 4)

    def whole(self):
        """Every image with a source is decoded (none is broken) and has alt text, and every
        canvas drawn as an image has a label."""
        broken = self.js(
            """return Array.from(document.images).filter((i) => i.getAttribute('src'))
            .filter((i) => !i.complete || !i.naturalWidth || !i.alt).map((i) => i.outerHTML);"""
        )
        assert broken == []
        unlabelled = self.js(
            """return Array.from(document.querySelectorAll('canvas[role=img]'))
            .filter((c) => !c.ariaLabel).map((c) => c.outerHTML);"""
        )
        assert unlabelled == []


def _png(server, path) -> np.ndarray:
    """An image the API answers, decoded."""
    response = requests.get(server.url + path, timeout=WAIT)
    assert response.status_code == 200, response.text
    return np.array(Image.open(io.BytesIO(response.content)))


SELECTED = "#selected-figures figure:nth-child(1) img"
EDITED = "#selected-figures figure:nth-child(2) img"


def test_page_loads_and_is_usable_by_keyboard(page, server):
    from selenium.webdriver.common.keys import Keys

    page.open("/")
    page.wait(lambda: page.driver.current_url == server.url + "/ui/gen", "the address")
    page.idle()
    labels = page.js(
        "return Array.from(document.querySelectorAll('.tile canvas'), (c) => c.ariaLabel)"
    )
    assert labels == [f"Sample of seed {s}" for s in range(8)]
    # Each tile is :sample's image for its seed, shown 16x larger with nearest-neighbour.
    np.testing.assert_array_equal(
        page.pixels(".tile canvas"), _png(server, "/v1/models/gen:sample?n=1")[2:-2, 2:-2]
    )
    style = page.js(
        "return getComputedStyle(document.querySelector('.tile canvas')).imageRendering"
    )
    assert style == "pixelated"
    assert page.js("return document.querySelector('.tile canvas').offsetWidth") == 128
    # The card: the FD placement line, the truncation trade-off, the memorisation check.
    assert EVALUATION["summary"] in page.text("fd-summary")
    assert "1.4" in page.text("nearest-check") and "3%" in page.text("nearest-check")
    assert page.js("return document.querySelectorAll('#truncation-table tr').length") == 4
    assert "Model card: generate model" in page.text("card-text")
    assert "FD 7.9" in page.text("truncation-note")
    # Every control is a labelled input, select or button; Enter on a tile selects it.
    unlabelled = page.js(
        """return Array.from(document.querySelectorAll('input, select'))
        .filter((e) => e.offsetParent && !e.labels.length).map((e) => e.outerHTML);"""
    )
    assert unlabelled == []
    page.keys(".tile[data-seed='3']", Keys.ENTER)
    page.wait(lambda: page.text("selected-title") == "Selected: seed 3", "the selection")
    page.idle()
    assert page.attr(".tile[data-seed='3']", "aria-pressed") == "true"
    page.wait_url("selected=3")
    page.whole()


def test_truncation_slider_changes_the_images(page, server):
    from selenium.webdriver.common.keys import Keys

    page.open("/ui/gen?seed=4&n=4")
    page.idle()
    before = page.pixels(".tile canvas")
    slider = page.keys("#truncation", *[Keys.ARROW_LEFT] * 10)  # 1 -> 0.5, one input each
    assert slider.get_attribute("value") == "0.5"
    page.wait_data("grid", "rendered", '[4,4,0.5,""]')
    page.idle()
    after = page.pixels(".tile canvas")
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(
        after, _png(server, "/v1/models/gen:sample?n=1&seed=4&truncation=0.5")[2:-2, 2:-2]
    )
    page.wait_url("truncation=0.5")
    assert "FD 20.1" in page.text("truncation-note")  # the evaluation's row at psi 0.5
    latencies = page.js(
        "return performance.getEntriesByName('truncation-to-paint').map((e) => e.duration)"
    )
    assert 1 <= len(latencies) <= 10 and all(m > 0 for m in latencies)
    page.whole()


def test_edit_slider_applies_the_edit(page, server):
    from selenium.webdriver.common.keys import Keys

    page.open("/ui/gen?seed=2&n=4&truncation=0.7&selected=3")
    page.idle()
    slider = page.keys("input[data-direction='sefa_0']", *[Keys.ARROW_RIGHT] * 6)  # 0 -> 1.5
    assert slider.get_attribute("value") == "1.5"
    page.wait(lambda: "sefa_0 +1.5" in page.attr(EDITED, "alt"), "the edit")
    page.idle()
    query = "direction=sefa_0&seed=3&num=1&strengths=1.5&truncation=0.7"
    np.testing.assert_array_equal(page.pixels(EDITED), _png(server, f"/v1/models/gen:edit?{query}"))
    page.wait_url("direction=sefa_0&strength=1.5")
    # Another direction replaces the first (one edit at a time, as :edit takes one).
    page.keys("input[data-direction='towards_x']", Keys.ARROW_LEFT)
    page.wait_url("direction=towards_x&strength=-0.25")
    assert page.attr("input[data-direction='sefa_0']", "value") == "0"
    page.whole()


def test_upload_a_png_and_edit_its_projection(page, server, tmp_path):
    from selenium.webdriver.common.keys import Keys

    page.open("/ui/gen?n=4")
    page.idle()
    target = _png(server, "/v1/models/gen:sample?n=1&seed=11")[2:-2, 2:-2]  # without its border
    path = tmp_path / "mine.png"
    gan_images.save_png(path, target[..., None])
    page.find("#project-file").send_keys(str(path))
    page.wait_data("project-panel", "projected", "true")
    page.idle()
    np.testing.assert_array_equal(page.pixels("#project-figures img"), target)
    reconstruction = page.pixels("#project-figures img", 1)
    assert reconstruction.shape == (8, 8)
    mse = np.mean((reconstruction.astype(float) - target) ** 2)
    assert mse < 40, mse  # a sample of the model itself is found again closely
    assert page.text("selected-title") == "Selected: your projected image"
    assert "PSNR" in page.text("selected-figures")
    # The edit sliders now move the projection (through :predict's edit signature).
    page.keys("input[data-direction='sefa_1']", *[Keys.ARROW_RIGHT] * 8)
    page.wait(lambda: "sefa_1 +2" in page.attr(EDITED, "alt"), "the projection's edit")
    page.idle()
    edited = page.pixels(EDITED)
    assert edited.shape == (8, 8) and not np.array_equal(edited, reconstruction)
    page.whole()


def test_draw_a_mask_and_see_the_inpainting(page, server):
    from selenium.webdriver.common.action_chains import ActionChains

    page.open("/ui/inpaint")
    page.wait_data("output-image", "runs", "1")  # the example image, the training's hole
    page.find("#mask-clear").click()
    page.wait_data("output-image", "runs", "2")
    assert page.data("mask-canvas", "holePixels") == "0"
    canvas = page.find("#mask-canvas")
    size = canvas.size["width"]  # 256 px for 16 model pixels; offsets are from its centre
    stroke = ActionChains(page.driver).move_to_element_with_offset(canvas, -size // 4, -size // 8)
    stroke.click_and_hold().move_by_offset(size // 2, 0).move_by_offset(0, size // 4).release()
    stroke.perform()
    page.wait_data("output-image", "runs", "3")
    holes = int(page.data("mask-canvas", "holePixels"))
    assert 15 <= holes <= 60, holes
    mask = (page.canvas("mask-canvas")[..., 3] > 0).astype(np.uint8) * 255
    image = page.canvas("input-canvas")[..., :3]
    # The output is :transform's for this image and mask; the baseline is the harmonic fill.
    files = {
        "image": ("image.png", gan_images.encode_png(image)),
        "mask": ("mask.png", gan_images.encode_png(mask[..., None])),
    }
    response = requests.post(f"{server.url}/v1/models/inpaint:transform", files=files, timeout=9)
    assert response.status_code == 200, response.text
    expected = np.array(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(page.pixels("#output-image"), expected)
    hole = (mask[..., None] >= 128).astype(np.float32)
    condition = np.concatenate([gan_images.to_float(image), hole], -1)[None]
    fill = gan_images.to_uint8(baselines.classical_fill(condition)[0])
    assert np.abs(page.pixels("#baseline-image").astype(int) - fill).max() <= 1
    page.whole()


def test_super_resolution_beside_bicubic_and_the_upload_limit(page, server, tmp_path):
    page.open("/ui/sr")
    page.wait_data("output-image", "runs", "1")
    low = page.canvas("input-canvas")[..., 0]
    bicubic = baselines.bicubic_upsample(gan_images.to_float(low[None, ..., None]), 2)
    bicubic = gan_images.to_uint8(bicubic)[0, ..., 0]
    assert np.abs(page.pixels("#baseline-image").astype(int) - bicubic).max() <= 1
    card = requests.get(f"{server.url}/v1/models/sr:card", timeout=WAIT).json()
    assert card["limits"]["transform_inputs"] == {"image": [8, 8, 1]}
    # A PNG of the right shape is sent as it is; one over the model's limit is refused here.
    png = gan_images.encode_png(low[..., None])
    chunk = b"tEXtComment\0" + b"x" * (card["limits"]["max_transform_body_bytes"] + 1)
    length, crc = struct.pack(">I", len(chunk) - 4), struct.pack(">I", zlib.crc32(chunk))
    path = tmp_path / "big.png"
    path.write_bytes(png[:33] + length + chunk + crc + png[33:])
    page.find("#transform-file").send_keys(str(path))
    page.wait(lambda: "limit" in page.text("error"), "the refusal")
    # The page's own message (the server's says "request body of ... bytes").
    assert page.text("error").startswith("This request would be ")
    assert "over this model's :transform limit" in page.text("error")
    assert page.data("output-image", "runs") == "1"
    page.whole()


def test_style_mixing(page, server):
    from selenium.webdriver.common.keys import Keys

    page.open("/ui/style?mix_coarse=1,2&mix_fine=3,4,5&crossover=2")
    page.wait_data("mix-grid", "rendered", '["1,2","3,4,5",2]')
    page.keys("#mix-crossover", Keys.ARROW_RIGHT)
    page.wait_data("mix-grid", "rendered", '["1,2","3,4,5",3]')
    assert page.js("return document.querySelectorAll('#mix-grid td img').length") == 6
    inputs = {"seeds_coarse": [1, 2], "seeds_fine": [3, 4, 5], "crossover": 3}
    body = {"signature_name": "style_mix", "inputs": inputs}
    response = requests.post(f"{server.url}/v1/models/style:predict", json=body, timeout=WAIT)
    mixes = np.array(response.json()["outputs"]["images"])[..., 0]
    # Row seed 2, column seed 4: the fifth mix.
    np.testing.assert_array_equal(page.pixels("#mix-grid td img", 4), mixes[4])
    page.wait_url("crossover=3")
    page.whole()


def test_walks_on_a_conditional_model(page, server):
    """With random classes, a walk goes from each seed's own class (which the page asks
    truncated_sample for) to the other's; with a class chosen, within that class."""
    page.open("/ui/cond?n=2&walk_to=5")
    page.wait(lambda: page.text("walk-figures").startswith("From seed 0"), "the walk")
    labels = []
    for seed in (0, 5):
        body = {"signature_name": "truncated_sample", "inputs": {"num_samples": 1, "seed": seed}}
        body["inputs"] |= {"truncation": 1.0, "label": []}
        response = requests.post(f"{server.url}/v1/models/cond:predict", json=body, timeout=WAIT)
        labels.append(response.json()["outputs"]["label"][0])
    query = f"seed_a=0&seed_b=5&steps=8&label_a={labels[0]}&label_b={labels[1]}"
    walk = _png(server, f"/v1/models/cond:interpolate?{query}")
    np.testing.assert_array_equal(page.pixels("#walk-figures img"), walk)
    page.open("/ui/cond?n=2&label=2&walk_to=5")
    page.wait(lambda: page.text("walk-figures").startswith("From seed 0"), "the walk")
    query = "seed_a=0&seed_b=5&steps=8&label_a=2&label_b=2"
    walk = _png(server, f"/v1/models/cond:interpolate?{query}")
    np.testing.assert_array_equal(page.pixels("#walk-figures img"), walk)
    page.idle()
    np.testing.assert_array_equal(
        page.pixels(".tile canvas", 1),
        _png(server, "/v1/models/cond:sample?n=1&seed=1&label=2")[2:-2, 2:-2],
    )
    page.whole()


def test_a_shared_url_reopens_the_same_view(page):
    from selenium.webdriver.common.keys import Keys

    page.open("/ui/gen?seed=5&n=4")
    page.idle()
    page.keys("#truncation", *[Keys.ARROW_LEFT] * 6)  # 0.7
    page.find(".tile[data-seed='7']").click()
    page.keys("input[data-direction='sefa_2']", *[Keys.ARROW_LEFT] * 8)  # -2
    page.find("#walk-to").clear()
    page.keys("#walk-to", "12")
    page.find("#walk-go").click()
    page.wait(lambda: page.text("walk-figures").startswith("From seed 7"), "the walk")
    page.wait_url("strength=-2")
    page.idle()
    shown = "#grid .tile canvas, #selected-figures img:not([hidden]), #walk-figures img"
    count = page.js(f"return document.querySelectorAll('{shown}').length")
    assert count == 4 + 2 + 1
    before = [page.pixels(shown, i) for i in range(count)]
    url = page.attr("#share-link", "href")
    assert url == page.driver.current_url and "walk_to=12" in url, url
    page.open(url.removeprefix(page.url))
    page.wait(lambda: page.text("walk-figures").startswith("From seed 7"), "the walk")
    page.idle()
    assert page.attr("#truncation", "value") == "0.7"
    assert page.attr("input[data-direction='sefa_2']", "value") == "-2"
    assert page.text("selected-title") == "Selected: seed 7"
    assert page.js(f"return document.querySelectorAll('{shown}').length") == count
    for i, image in enumerate(before):
        np.testing.assert_array_equal(page.pixels(shown, i), image)


def test_api_errors_are_messages_not_broken_images(page):
    """A stale link naming a direction the model does not have: the server's 400 message is
    shown, the samples still are, and no <img> is broken."""
    from selenium.webdriver.common.keys import Keys

    page.allowed = ["status of 400"]  # the browser logs the failed request itself
    page.open("/ui/gen?n=3&direction=nope&strength=1")
    page.wait(lambda: "unknown direction 'nope'" in page.text("error"), "the message")
    assert "sefa_0" in page.text("error")  # the server's message lists the real ones
    assert page.js("return document.querySelectorAll('#grid .tile canvas').length") == 3
    page.wait(lambda: page.attr(SELECTED, "alt") == "Sample of seed 0", "the selected sample")
    assert "the server refused it" in page.text("selected-figures")
    assert page.attr("#error", "role") == "alert"
    page.whole()
    # Client-side checks say what is wrong before anything is sent.
    page.find("#walk-steps").clear()
    page.keys("#walk-steps", "1")
    page.find("#walk-go").click()
    page.wait(lambda: "Steps must be a whole number in [2, 32]" in page.text("error"))
    assert "unknown direction 'nope'" in page.text("error")  # both are on show
    page.shot("api_errors_shown")
    # Each message goes when what it is about succeeds: a real edit, then a walk.
    page.keys("input[data-direction='sefa_0']", Keys.ARROW_RIGHT)
    page.wait(lambda: "nope" not in page.text("error"), "the edit's message to clear")
    assert "Steps must be" in page.text("error")
    page.find("#walk-steps").clear()
    page.keys("#walk-steps", "3")
    page.find("#walk-go").click()
    page.wait(lambda: page.text("error") == "", "the walk's message to clear")
    assert page.attr("#error", "hidden") == "true"
    page.whole()
