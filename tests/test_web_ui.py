"""The web UI end to end: Debian's Chromium driven by Playwright against the real app under uvicorn (in-process
queue) with a tiny hand-made model pair. Screenshots go to test-artifacts/web/ (the path is printed at the end)."""

# ruff: noqa: RUF001 (the page shows the multiplication sign and alpha; the tests read what it shows)

import base64
import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import api_server, service_env, wait_until
from web_helpers import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    chromium_missing_reason,
    expected_output,
    page_server,
    sample_image,
    tiny_pair,
)

from esrgan.models.images import Picture
from esrgan.models.resize import resize

MISSING = chromium_missing_reason()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

API_KEY = "web-ui-test-key-0123456789"
MAX_UPLOAD = 150_000
MAX_PIXELS = 400_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("web")
    psnr, gan = tiny_pair(folder)
    big = folder / "too-many-pixels.png"
    Image.fromarray(np.full((600, 800, 3), 90, np.uint8)).save(big)
    heavy = folder / "heavy.png"  # few pixels, many bytes: trailing data after IEND is ignored by decoders
    sample_image(heavy, (64, 48))
    heavy.write_bytes(heavy.read_bytes() + bytes(MAX_UPLOAD + 20_000 - heavy.stat().st_size))
    notes = folder / "notes.txt"
    notes.write_text("not an image")
    return {
        "folder": folder,
        "psnr": psnr,
        "gan": gan,
        "sample": sample_image(folder / "sample.png", (96, 64)),
        # About 3,800 tiles of 16 px: seconds of work, however fast the machine, so a test can watch it run.
        "long": sample_image(folder / "long.png", (640, 480)),
        "big": big,
        "heavy": heavy,
        "notes": notes,
    }


@pytest.fixture(scope="module")
def server(files: dict[str, Path]) -> Iterator[str]:
    """The server's URL. 16 px tiles make even small images take hundreds of network calls, so progress is seen
    between polls."""
    with page_server(
        files["folder"], files["psnr"], files["gan"], max_upload_bytes=MAX_UPLOAD, max_pixels=MAX_PIXELS, tile=16
    ) as url:
        yield url


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:  # after the run's summary, where output is no longer captured
        request.config.add_cleanup(lambda: reporter.write_line(f"web UI screenshots: {ARTIFACTS}"))


# Collects what the page's Content-Security-Policy blocked, in the page, from before its first script runs.
CSP_WATCH = """document.addEventListener("securitypolicyviolation", (e) =>
    (window.__blocked = window.__blocked || []).push(`${e.violatedDirective} ${e.blockedURI}`));"""


def open_page(browser, url: str, page_route=None, **options):
    """A fresh context and page; page errors (uncaught exceptions) are collected and must stay empty.
    `page_route` handles the request for the page itself, if given. The page's CSP is bypassed here, because these
    tests read the page with Playwright's string predicates and blob fetches, which the CSP rightly refuses; the page
    itself under its CSP is `test_the_page_and_the_api_docs_work_under_their_csp`'s business."""
    context = browser.new_context(accept_downloads=True, bypass_csp=True, **options)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    if page_route is not None:
        page.route(url, page_route)
    page.goto(url)
    page.wait_for_selector("html[data-ready=true]")
    return context, page


@pytest.fixture
def desktop(browser, server: str):
    context, page = open_page(browser, server, viewport=DESKTOP)
    yield page
    context.close()
    assert page.errors == []


def drop_file(page, path: Path, mime: str = "image/png") -> bool:
    """Drops a real File through a DataTransfer on the viewer; returns whether the drop overlay showed meanwhile."""
    data = base64.b64encode(path.read_bytes()).decode()
    return page.evaluate(
        """([data, name, type]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type }));
            const target = document.getElementById("viewer");
            const fire = (kind) =>
                target.dispatchEvent(new DragEvent(kind, { bubbles: true, cancelable: true, dataTransfer: transfer }));
            fire("dragenter");
            fire("dragover");
            const overlay = !document.getElementById("drop-overlay").hidden;
            fire("drop");
            return overlay;
        }""",
        [data, path.name, mime],
    )


def record_status(page) -> None:
    """Keep every status line and progress value the page shows, in window.__seen."""
    page.evaluate(
        """() => {
            window.__seen = [];
            const bar = document.getElementById("progress-bar");
            const text = document.getElementById("status-text");
            const note = () => window.__seen.push([text.textContent, Number(bar.getAttribute("aria-valuenow"))]);
            const observer = new MutationObserver(note);
            observer.observe(bar, { attributes: true });
            observer.observe(text, { childList: true, characterData: true, subtree: true });
        }"""
    )


def wait_finished(page) -> None:
    """Wait for the job to end; a failure fails the test at once, with the message the page shows."""
    page.wait_for_selector("body[data-state=finished], body[data-state=error]", timeout=60_000)
    assert page.get_attribute("body", "data-state") == "finished", page.inner_text("#error")


def blob_bytes(page, selector: str) -> bytes:
    """The bytes behind an <img> whose src is a blob: URL (what the page fetched and shows)."""
    data = page.eval_on_selector(
        selector,
        """async (img) => {
            const blob = await (await fetch(img.src)).blob();
            return await new Promise((resolve) => {
                const reader = new FileReader();
                reader.onload = () => resolve(reader.result.split(",")[1]);
                reader.readAsDataURL(blob);
            });
        }""",
    )
    return base64.b64decode(data)


def split(page) -> float:
    return float(page.get_attribute("#divider", "aria-valuenow"))


def rgb(path_or_bytes) -> np.ndarray:
    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, bytes) else path_or_bytes
    return np.asarray(Image.open(source).convert("RGB"), dtype=np.float32) / 255


def test_the_page_and_the_api_docs_work_under_their_csp(browser, server: str, files: dict[str, Path]) -> None:
    """The page under its own CSP header runs a whole job (blob: images in the compare view) with no console error
    and nothing blocked; /docs and /redoc render under theirs, offline: everything loaded comes from this origin.
    The one thing blocked is ReDoc's own footer logo, which its script hard-codes from a CDN (it hides the image when
    the load fails): the CSP is what keeps the docs page from calling out."""
    context = browser.new_context(accept_downloads=True)  # the page's CSP applies: no bypass_csp here
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    console, answered = [], []
    page.on("console", lambda m: m.type == "error" and console.append(m.text))
    page.on("pageerror", lambda exc: console.append(str(exc)))
    page.on("response", lambda r: answered.append(r.url))  # a request the CSP blocked gets no response
    answer = page.goto(server)
    assert "script-src 'self';" in answer.headers["content-security-policy"]
    page.wait_for_selector("html[data-ready=true]")
    page.set_input_files("#file-input", files["sample"])
    page.wait_for_selector("#file-info:not([hidden])")
    page.click("#start")
    wait_finished(page)
    assert page.get_attribute("#after-img", "src").startswith("blob:")
    with page.expect_download() as download:
        page.click("#download")
    assert download.value.suggested_filename.endswith(".png")
    assert page.evaluate("window.__blocked || []") == [] and console == []
    redoc_logo = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    for path, rendered, blocked in (
        ("docs", ".swagger-ui .info .title", []),
        ("redoc", "[data-section-id] h2", [f"img-src {redoc_logo}"]),
    ):
        answer = page.goto(f"{server}/{path}")
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
        page.wait_for_selector(rendered, timeout=30_000)
        assert "ESRGAN upscaling service" in page.inner_text("body"), path
        page.screenshot(path=ARTIFACTS / f"desktop-{path}.png")
        assert page.evaluate("window.__blocked || []") == blocked, path
    context.close()
    assert all(redoc_logo in message for message in console), console
    origin = server.rstrip("/")
    assert all(url.startswith((origin, "blob:", "data:")) for url in answered), [u for u in answered if origin not in u]


def test_drop_upscale_compare_and_download(desktop, files: dict[str, Path], tmp_path: Path) -> None:
    page = desktop
    page.screenshot(path=ARTIFACTS / "desktop-empty.png")
    assert drop_file(page, files["sample"]), "the drop overlay did not show while dragging"
    page.wait_for_selector("#file-info:not([hidden])")
    assert page.inner_text("#info-name") == "sample.png"
    assert page.inner_text("#info-dims") == "96 × 64 px"
    assert page.inner_text("#info-output") == "384 × 256 px"
    assert page.inner_text("#info-size").endswith("KB")
    assert page.get_attribute("#viewer", "data-mode") == "input"

    # Alpha by keyboard: Home is 0 ("faithful"), each arrow one step of 0.05.
    page.focus("#alpha")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    assert page.inner_text("#alpha-value") == "0.00"
    page.wait_for_selector("#viewer:not(.previewing)")

    record_status(page)
    page.click("#start")
    wait_finished(page)
    assert page.get_attribute("#progress-bar", "aria-valuenow") == "100"
    assert page.inner_text("#status-text").startswith("Done in")
    seen = page.evaluate("window.__seen")
    # On an idle machine this small job can finish between two polls, so live tile labels are asserted on the long
    # job of test_queue_position_progress_and_cancel; here, whatever tile progress was shown only ever rises.
    assert [label for label, _ in seen][-1].startswith("Done in"), seen
    values = [v for label, v in seen if re.fullmatch(r"Upscaling: tile \d+ of \d+", label)]
    assert values == sorted(values) and all(v <= 100 for v in values)

    # The comparison: input on the left, result on the right, the same size in output pixels.
    assert page.get_attribute("#viewer", "data-mode") == "compare"
    assert page.is_visible("#divider")
    assert page.inner_text("#tag-after") == "ESRGAN · α 0.00"
    before, after = page.locator("#before-img").bounding_box(), page.locator("#after-img").bounding_box()
    assert before == after

    # Handle: mouse drag, then keyboard.
    box = page.locator("#divider .grip").bounding_box()
    viewer = page.locator("#viewer").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 200, y, steps=5)
    page.mouse.up()
    assert split(page) == pytest.approx(50 - 100 * 200 / viewer["width"], abs=1)
    page.focus("#divider")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    assert split(page) == pytest.approx(50 - 100 * 200 / viewer["width"] + 12, abs=1)
    clip = page.eval_on_selector("#after-layer", "e => e.style.clipPath")
    assert float(re.search(r"([\d.]+)%", clip).group(1)) == pytest.approx(split(page), abs=0.5)
    page.screenshot(path=ARTIFACTS / "desktop-compare.png")

    # Zoom to 1:1, then pan: both sides keep the same transform.
    page.click("#zoom-1")
    assert page.inner_text("#zoom-level") == "100%"
    for _ in range(3):  # 3.4x: the 384 x 256 result overflows the frame both ways, so it can pan
        page.click("#zoom-in")
    transform = page.eval_on_selector("#before-world", "e => e.style.transform")
    page.mouse.move(viewer["x"] + 100, viewer["y"] + 100)
    page.mouse.down()
    page.mouse.move(viewer["x"] + 160, viewer["y"] + 140, steps=4)
    page.mouse.up()
    moved = page.eval_on_selector("#before-world", "e => e.style.transform")
    assert moved != transform
    assert moved == page.eval_on_selector("#after-world", "e => e.style.transform")
    assert page.locator("#before-img").bounding_box() == page.locator("#after-img").bounding_box()

    # Download: the server's file name, PNG, four times the input size, and the pixels the pair computes at alpha 0.
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == "sample_x4.png"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with Image.open(saved) as image:
        assert (image.format, image.size) == ("PNG", (384, 256))
    got, want = rgb(saved), expected_output(rgb(files["sample"]), 0.0)
    assert np.abs(got - want).mean() < 1 / 255


def test_alphas_stay_cached_and_preview_shows_the_visible_crop(desktop, files: dict[str, Path]) -> None:
    page = desktop
    page.uncheck("#preview-mode")
    page.set_input_files("#file-input", files["sample"])
    page.wait_for_selector("#file-info:not([hidden])")
    page.focus("#alpha")
    page.keyboard.press("Home")
    page.click("#start")
    wait_finished(page)

    # Zoomed in, only part of the output is on screen: the preview covers that part, at the new alpha.
    page.check("#preview-mode")
    page.click("#zoom-1")
    for _ in range(3):
        page.click("#zoom-in")
    track = page.locator("#alpha").bounding_box()
    page.mouse.click(track["x"] + track["width"] - 2, track["y"] + track["height"] / 2)  # the far end: alpha 1
    assert page.inner_text("#alpha-value") == "1.00"
    page.wait_for_selector("#preview-box:not([hidden])", timeout=30_000)
    page.wait_for_selector("#viewer:not(.previewing)")
    natural = page.eval_on_selector("#preview-img", "e => [e.naturalWidth, e.naturalHeight]")
    shown = page.eval_on_selector("#preview-box", "e => [parseFloat(e.style.width), parseFloat(e.style.height)]")
    assert 0 < shown[0] <= natural[0] < 384 and 0 < shown[1] <= natural[1] <= 256
    assert natural[0] % 4 == 0 and natural[1] % 4 == 0
    assert page.inner_text("#tag-after").startswith("Preview α 1.00")
    # Its pixels are the whole image's result at alpha 1 in exactly the area it is laid over.
    x, y, w, h = (
        int(v)
        for v in page.eval_on_selector(
            "#preview-box", "e => [e.offsetLeft, e.offsetTop, e.offsetWidth, e.offsetHeight]"
        )
    )
    dx, dy = (int(-v) for v in page.eval_on_selector("#preview-img", "e => [e.offsetLeft, e.offsetTop]"))
    crop = rgb(blob_bytes(page, "#preview-img"))[dy : dy + h, dx : dx + w]
    whole = expected_output(rgb(files["sample"]), 1.0)[y : y + h, x : x + w]
    assert crop.shape == whole.shape and np.abs(crop - whole).mean() < 1 / 255
    page.screenshot(path=ARTIFACTS / "desktop-preview.png")

    page.click("#zoom-fit")
    page.click("#start")
    page.wait_for_selector("#chips .chip >> nth=1", timeout=60_000)
    assert page.locator("#chips .chip").all_inner_texts() == ["α 0.00", "α 1.00"]
    assert page.is_hidden("#preview-box")
    sharp = page.get_attribute("#after-img", "src")

    # Switching back is instant: the kept result is shown with no request at all.
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.click("#chips .chip >> nth=0")
    assert page.inner_text("#alpha-value") == "0.00"
    assert page.inner_text("#tag-after") == "ESRGAN · α 0.00"
    smooth = page.get_attribute("#after-img", "src")
    assert smooth.startswith("blob:") and smooth != sharp
    assert page.get_attribute("#start", "disabled") is not None
    page.click("#chips .chip >> nth=1")
    assert page.get_attribute("#after-img", "src") == sharp
    assert requests == []


def test_queue_position_progress_and_cancel(desktop, server: str, files: dict[str, Path]) -> None:
    page = desktop
    upload = {"file": ("long.png", files["long"].read_bytes(), "image/png")}
    running = httpx.post(f"{server}/upscale", files=upload).json()["id"]
    wait_until(lambda: httpx.get(f"{server}/jobs/{running}").json()["state"] == "started", 30, "a running job")
    waiting = httpx.post(f"{server}/upscale", files=upload).json()["id"]

    page.set_input_files("#file-input", files["long"])
    page.wait_for_selector("#file-info:not([hidden])")
    with page.expect_response(re.compile(r"/upscale\?")) as posted:
        page.click("#start")
    job_id = posted.value.json()["id"]
    status = "document.getElementById('status-text').textContent"
    page.wait_for_function(f"{status} === 'Queued: 1 job ahead'")
    page.screenshot(path=ARTIFACTS / "desktop-queued.png")
    assert httpx.delete(f"{server}/jobs/{waiting}").status_code == 202
    page.wait_for_function(f"{status} === 'Queued: starting next'")
    assert httpx.delete(f"{server}/jobs/{running}").status_code == 202

    page.wait_for_function(f"/^Upscaling: tile \\d+ of \\d+$/.test({status})")
    page.screenshot(path=ARTIFACTS / "desktop-progress.png")
    assert 0 <= int(page.get_attribute("#progress-bar", "aria-valuenow")) < 100
    page.click("#cancel")
    page.wait_for_selector("body[data-state=cancelled]")
    assert page.inner_text("#status-text") == "Cancelled."
    assert page.is_hidden("#cancel")
    assert httpx.get(f"{server}/jobs/{job_id}").json()["state"] == "cancelled"
    assert page.get_attribute("#start", "disabled") is None


def test_refusals_in_the_page_and_errors_from_the_server(browser, server: str, files: dict[str, Path]) -> None:
    context, page = open_page(browser, server, viewport=DESKTOP)
    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)

    page.set_input_files("#file-input", files["notes"])
    page.wait_for_selector("#file-error:not([hidden])")
    assert (
        page.inner_text("#file-error") == "“notes.txt” is a text/plain file. This page takes PNG, JPEG or WebP images."
    )
    page.set_input_files("#file-input", files["big"])
    page.wait_for_function("document.getElementById('file-error').textContent.includes('800 × 600')")
    assert page.inner_text("#file-error").endswith("is 800 × 600 pixels (0.48 MP); the server accepts up to 0.40 MP.")
    page.set_input_files("#file-input", files["heavy"])
    page.wait_for_function("document.getElementById('file-error').textContent.includes('heavy.png')")
    assert page.inner_text("#file-error").endswith("the server accepts files up to 146.5 KB.")
    assert page.get_attribute("body", "data-state") == "empty"
    assert page.inner_text("#limits-hint") == "PNG, JPEG or WebP · up to 146.5 KB · up to 0.40 megapixels"
    page.screenshot(path=ARTIFACTS / "desktop-refused.png")
    assert posts == []
    context.close()

    # A page that believes the limits are higher (an older page, another deployment): the server still refuses,
    # and its reason appears in plain words.
    def loosen(route) -> None:
        html = route.fetch().text().replace(f'"max_upload_bytes": {MAX_UPLOAD}', '"max_upload_bytes": 999999999')
        route.fulfill(body=html, content_type="text/html")

    context, page = open_page(browser, f"{server}/", page_route=loosen, viewport=DESKTOP)
    page.set_input_files("#file-input", files["heavy"])
    page.wait_for_selector("#file-info:not([hidden])")
    page.click("#start")
    page.wait_for_selector("#error:not([hidden])")
    assert page.inner_text("#error") == "The upload is larger than this server accepts (0.143051 MB)."
    assert page.get_attribute("body", "data-state") == "error"
    page.screenshot(path=ARTIFACTS / "desktop-server-error.png")
    context.close()
    assert page.errors == []


def test_phone_width_with_touch(browser, server: str, files: dict[str, Path]) -> None:
    context, page = open_page(browser, server, viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    page.screenshot(path=ARTIFACTS / "phone-empty.png")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.set_input_files("#file-input", files["sample"])
    page.wait_for_selector("#file-info:not([hidden])")
    page.tap("#start")
    wait_finished(page)
    assert page.get_attribute("#progress-bar", "aria-valuenow") == "100"
    viewer = page.locator("#viewer").bounding_box()
    assert viewer["width"] <= PHONE["width"] and viewer["height"] >= 200

    # Drag the handle with a finger (real touch events through the DevTools protocol).
    page.locator("#divider").scroll_into_view_if_needed()
    box = page.locator("#divider .grip").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 6):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x + 20 * step, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    viewer = page.locator("#viewer").bounding_box()
    assert split(page) == pytest.approx(50 + 100 * 100 / viewer["width"], abs=1.5)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=ARTIFACTS / "phone-compare.png", full_page=True)
    context.close()
    assert page.errors == []


def test_api_key_is_asked_once(browser, files: dict[str, Path]) -> None:
    folder = files["folder"] / "keyed"
    folder.mkdir()
    with page_server(folder, files["psnr"], files["gan"], api_key=API_KEY) as keyed:
        assert httpx.get(f"{keyed}/models").status_code == 401
        context, page = open_page(browser, keyed, viewport=DESKTOP)
        assert page.is_visible("#key-button")
        page.set_input_files("#file-input", files["sample"])
        page.wait_for_selector("#file-info:not([hidden])")
        page.click("#start")
        page.wait_for_selector("#key-dialog[open]")
        page.screenshot(path=ARTIFACTS / "desktop-api-key.png")
        page.fill("#key-input", "not-the-right-key-at-all")
        page.click("#key-save")
        page.wait_for_function("document.getElementById('key-message').textContent.includes('needs an API key')")
        page.wait_for_selector("#key-dialog[open]")
        page.fill("#key-input", API_KEY)
        page.click("#key-save")
        wait_finished(page)
        assert page.evaluate("sessionStorage.getItem('esrgan.apiKey')") == API_KEY

        # Same tab, new page load: the key is kept, nothing is asked again.
        page.reload()
        page.wait_for_selector("html[data-ready=true]")
        page.set_input_files("#file-input", files["sample"])
        page.wait_for_selector("#file-info:not([hidden])")
        page.click("#start")
        wait_finished(page)
        assert page.is_hidden("#key-dialog")
        context.close()
        assert page.errors == []


def test_output_scale_is_offered_and_sets_the_result_size(desktop, files: dict[str, Path], tmp_path: Path) -> None:
    page = desktop
    assert page.locator("#scale option").all_inner_texts() == ["×4 (model)", "×3", "×2"]
    page.set_input_files("#file-input", files["sample"])
    page.wait_for_selector("#file-info:not([hidden])")
    page.select_option("#scale", "2")
    assert page.text_content("#info-output-label") == "Output (×2)"
    assert page.inner_text("#info-output") == "192 × 128 px"
    assert page.inner_text("#start") == "Upscale ×2 at α 0.80"
    with page.expect_request(re.compile(r"/upscale\?")) as posted:
        page.click("#start")
    assert "scale=2" in posted.value.url
    wait_finished(page)
    assert page.locator("#before-img").bounding_box() == page.locator("#after-img").bounding_box()
    with page.expect_download() as info:
        page.click("#download")
    assert info.value.suggested_filename == "sample_x2.png"
    saved = tmp_path / "sample_x2.png"
    info.value.save_as(saved)
    with Image.open(saved) as image:
        assert image.size == (192, 128)
    # The network's x4 result, resized by the server's filter.
    x4 = (expected_output(rgb(files["sample"]), 0.8) * 255 + 0.5).astype(np.uint8)
    want = resize(Picture(x4), 192, 128).pixels.astype(np.float32) / 255
    assert np.abs(rgb(saved) - want).mean() < 1 / 255


def test_a_batch_lists_each_file_and_one_bad_file_fails_alone(browser, server: str, files: dict[str, Path]) -> None:
    """Five files at once: three good ones, one the page refuses (not an image) and one only the server refuses (the
    page was told a higher upload limit): each bad one shows its own reason, the good ones finish, and "download
    all" brings one zip with exactly the server's results."""
    folder = files["folder"] / "batch"
    folder.mkdir()
    good = [sample_image(folder / f"{name}.png", size) for name, size in (("one", (48, 32)), ("two", (40, 40)))]
    good.insert(1, files["sample"])

    def loosen(route) -> None:
        html = route.fetch().text().replace(f'"max_upload_bytes": {MAX_UPLOAD}', '"max_upload_bytes": 999999999')
        route.fulfill(body=html, content_type="text/html")

    context, page = open_page(browser, f"{server}/", page_route=loosen, viewport=DESKTOP)
    posts = []
    page.on("response", lambda r: posts.append(r) if "/upscale?" in r.url else None)
    page.select_option("#scale", "3")
    page.set_input_files("#file-input", [good[0], files["notes"], good[1], files["heavy"], good[2]])
    rows = page.locator("#batch-list li")
    page.wait_for_function("!document.querySelector('#batch-list li[data-state=checking]')")
    assert rows.count() == 5 and page.is_hidden("#file-info")
    assert page.inner_text("#batch-list li >> nth=1 >> .batch-error") == (
        "“notes.txt” is a text/plain file. This page takes PNG, JPEG or WebP images."
    )
    assert page.inner_text("#start") == "Upscale 4 images ×3 at α 0.80"
    assert page.get_attribute("#download-all", "disabled") is not None

    page.click("#start")
    page.wait_for_function(
        "[...document.querySelectorAll('#batch-list li')]"
        ".every((li) => ['finished', 'failed'].includes(li.dataset.state))",
        timeout=60_000,
    )
    states = [rows.nth(i).get_attribute("data-state") for i in range(5)]
    assert states == ["finished", "failed", "finished", "failed", "finished"]
    page.wait_for_function("document.getElementById('cancel').hidden")  # the run has ended: nothing left to start
    assert page.get_attribute("#start", "disabled") is not None
    assert page.inner_text("#batch-list li >> nth=3 >> .batch-error") == (
        "The upload is larger than this server accepts (0.143051 MB)."
    )
    sizes = {"one_x3.png": (144, 96), "sample_x3.png": (288, 192), "two_x3.png": (120, 120)}  # 3x 48x32, 96x64, 40x40
    shown = [rows.nth(i).locator(".batch-status").inner_text() for i in (0, 2, 4)]
    assert shown == [f"Done · {w} × {h} px" for w, h in sizes.values()]
    assert page.inner_text("#batch-title") == "5 images · 3 done"
    assert page.get_attribute("#batch-list li >> nth=4 >> .batch-track", "aria-valuenow") == "100"

    # The compare view follows the selected row: the first usable file at first, then the one clicked.
    page.wait_for_selector("#viewer[data-mode=compare]")
    page.click("#batch-list li >> nth=2 >> .batch-name")
    page.wait_for_function("document.getElementById('download-text').textContent.startsWith('Download sample_x3.png')")
    assert page.locator("#after-img").bounding_box() == page.locator("#before-img").bounding_box()
    assert page.eval_on_selector("#after-img", "e => [e.naturalWidth, e.naturalHeight]") == [288, 192]
    page.screenshot(path=ARTIFACTS / "desktop-batch.png")

    with page.expect_download() as info:
        page.click("#batch-list li >> nth=4 >> .batch-download")
    assert info.value.suggested_filename == "two_x3.png"

    results = {}
    for response in posts:
        if response.status == 202:
            job = response.json()
            results[job["filename"]] = httpx.get(f"{server}/jobs/{job['id']}/result").content
    assert sorted(results) == ["one_x3.png", "sample_x3.png", "two_x3.png"]
    with page.expect_download() as info:
        page.click("#download-all")
    assert info.value.suggested_filename == "esrgan-results.zip"
    with zipfile.ZipFile(info.value.path()) as archive:
        assert archive.namelist() == ["one_x3.png", "sample_x3.png", "two_x3.png"]
        for name in archive.namelist():
            assert archive.read(name) == results[name]
            assert Image.open(io.BytesIO(results[name])).size == sizes[name]
    context.close()
    assert page.errors == []


@pytest.fixture(scope="module")
def models_server(files: dict[str, Path], realesrgan_cache: Path) -> Iterator[str]:
    """A server offering our tiny pair (detail), Real-ESRGAN's general pair (denoise, from a real weights cache) and
    a single model, realesr-animevideov3."""
    weights = f"tiny={files['psnr']}+{files['gan']},realesr-general-x4v3,realesr-animevideov3"
    folder = files["folder"] / "models"
    env = service_env(folder, weights, device="cpu", tile=32, cache_dir=realesrgan_cache)
    with api_server(env, files["folder"] / "models-server.log") as client:
        yield str(client.base_url).rstrip("/")


def slider(page) -> dict:
    """What the page shows of the alpha slider."""
    return {
        "name": page.inner_text("#alpha-name"),
        "ends": page.locator(".range-labels span").all_inner_texts() if page.is_visible(".range-labels") else None,
        "value": page.input_value("#alpha"),
        "shown": page.inner_text("#alpha-value"),
        "disabled": page.is_disabled("#alpha"),
        "note": page.inner_text("#alpha-note") if page.is_visible("#alpha-note") else None,
    }


def test_the_slider_says_what_each_models_alpha_means_and_is_off_for_a_single_model(
    browser, models_server: str, files: dict[str, Path]
) -> None:
    context, page = open_page(browser, models_server, viewport=DESKTOP)
    detail = {"name": "Detail", "ends": ["0 · faithful", "detailed · 1"], "value": "0.8", "shown": "0.80"}
    assert slider(page) == {**detail, "disabled": False, "note": None}  # a pair of one's own: the paper's 0.8
    page.screenshot(path=ARTIFACTS / "slider-detail.png")

    page.select_option("#model", "realesr-general-x4v3")
    denoise = {"name": "Denoise", "ends": ["0 · keep noise", "remove noise · 1"], "value": "0.5", "shown": "0.50"}
    assert slider(page) == {**denoise, "disabled": False, "note": None}  # Real-ESRGAN's own -dn default
    page.screenshot(path=ARTIFACTS / "slider-denoise.png")

    page.select_option("#model", "realesr-animevideov3")
    single = slider(page)
    assert single["disabled"] and single["shown"] == "–" and single["name"] == "Blend" and single["ends"] is None
    assert single["note"] == "realesr-animevideov3 is a single network, not a pair of two to blend, so it has no alpha."
    page.set_input_files("#file-input", files["sample"])
    page.wait_for_selector("#file-info:not([hidden])")
    assert page.inner_text("#start") == "Upscale ×4"
    with page.expect_request(re.compile(r"/upscale\?")) as posted:
        page.click("#start")
    assert "alpha=" not in posted.value.url and "model=realesr-animevideov3" in posted.value.url
    wait_finished(page)
    assert page.inner_text("#tag-after") == "realesr-animevideov3" and page.inner_text("#chips") == "result"
    with Image.open(io.BytesIO(blob_bytes(page, "#after-img"))) as result:
        assert result.size == (384, 256)
    page.screenshot(path=ARTIFACTS / "slider-single-model.png")

    page.select_option("#model", "realesr-general-x4v3")  # back to a pair: its labels and default again
    assert slider(page) == {**denoise, "disabled": False, "note": None}
    context.close()
    assert page.errors == []
