"""`belamy serve`: the HTTP API (fields validated, uploads bounded, requests batched, provenance on every image) and
the web page in a real headless Chromium."""

import asyncio
import base64
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import belamy
from belamy.provenance import detect_watermark

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from belamy.serve.app import create_app  # noqa: E402

QUIET = {"progress": False, "sample_every": 0, "log_every": 10, "ckpt_every": 0}
TINY = {"latent_dim": 16, "g_width": 16, "d_width": 16}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {
        "digits-cgan": belamy.train(model="cgan", data="digits", resolution=16, options=TINY, steps=2, out=str(out),
                                    name="digits-cgan", **QUIET).path,
        "shapes-t2i": belamy.train(model="text2img", data="shapes", batch_size=8, steps=1, out=str(out),
                                   name="shapes-t2i", options={"g_width": 8, "d_width": 8, "embed_dim": 16,
                                                               "hidden_dim": 16, "latent_dim": 16, "cond_dim": 16,
                                                               "text_encoder": "scratch"}, **QUIET).path,
        "strokes": belamy.train(model="cyclegan", data="mnist-strokes", batch_size=4, steps=1, out=str(out),
                                name="strokes", options={"width": 8, "d_width": 8, "blocks": 1}, **QUIET).path,
    }


@pytest.fixture(scope="module")
def client(runs):
    with TestClient(create_app(list(runs.values()))) as c:
        yield c


def _png(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_models_health_and_generation_with_provenance(client):
    assert client.get("/health").json()["models"] == ["digits-cgan", "shapes-t2i", "strokes"]
    models = {m["name"]: m for m in client.get("/models").json()}
    assert models["digits-cgan"]["conditioning"] == "class" and models["digits-cgan"]["classes"][7] == "7"
    assert models["shapes-t2i"]["conditioning"] == "text" and models["shapes-t2i"]["vocabulary_size"] > 20
    assert models["strokes"]["directions"] == ["AtoB", "BtoA"] and models["digits-cgan"]["resolution"] == 16

    grid = _png(client.post("/generate", json={"model": "digits-cgan", "n": 4, "seed": 3, "class": "7"}))
    assert grid.size == (2 * 18 + 2, 2 * 18 + 2)
    assert grid.text["generator"] == "belamy" and grid.text["seed"] == "3" and grid.text["condition"] == "class 7"
    assert grid.text["model"] == "digits-cgan" and detect_watermark(grid).marked
    again = _png(client.post("/generate", json={"model": "digits-cgan", "n": 4, "seed": 3, "class": "7"}))
    assert again.tobytes() == grid.tobytes()  # a seed names its images

    body = client.post("/generate", json={"model": "shapes-t2i", "n": 3, "prompt": "a red circle", "format": "json"})
    images = [Image.open(io.BytesIO(base64.b64decode(b))) for b in body.json()["images"]]
    assert len(images) == 3 and images[0].size == (32, 32) and images[0].text["condition"] == "a red circle"

    # The walk: t = 0 is the seed's image, t = 1 the other seed's.
    start = _png(client.post("/generate", json={"model": "digits-cgan", "n": 1, "seed": 1, "class": 2}))
    walk = {t: _png(client.post("/generate", json={"model": "digits-cgan", "n": 1, "seed": 1, "class": 2,
                                                   "to_seed": 9, "t": t})) for t in (0.0, 0.5, 1.0)}
    end = _png(client.post("/generate", json={"model": "digits-cgan", "n": 1, "seed": 9, "class": 2}))
    assert walk[0.0].tobytes() == start.tobytes() and walk[1.0].tobytes() == end.tobytes()
    assert walk[0.5].tobytes() not in (start.tobytes(), end.tobytes())


def test_every_field_is_validated(client):
    def error(body, status=422):
        r = client.post("/generate", json=body)
        assert r.status_code == status, r.text
        return json.dumps(r.json()["detail"])

    assert "not served here" in error({"model": "../../etc/passwd"})  # names come from the registry only
    assert "less than or equal to 64" in error({"model": "digits-cgan", "n": 65})
    assert "greater than or equal to 0" in error({"model": "digits-cgan", "seed": -1})
    assert "not one of this model's 10 classes" in error({"model": "digits-cgan", "class": "cat"})
    assert "takes no prompt" in error({"model": "digits-cgan", "prompt": "a seven"})
    assert "no truncation trick" in error({"model": "digits-cgan", "truncation": 0.7})
    assert "give to_seed" in error({"model": "digits-cgan", "t": 0.5})
    assert "Extra inputs are not permitted" in error({"model": "digits-cgan", "colour": "red"})
    assert "needs a prompt" in error({"model": "shapes-t2i"})
    assert "no known word" in error({"model": "shapes-t2i", "prompt": "qwerty zxcv"})
    assert "use POST /translate" in error({"model": "strokes"})


def test_translate_uploads(client, tmp_path):
    buffer = io.BytesIO()
    Image.new("P", (40, 40), 3).save(buffer, "PNG")  # a palette image of another size: converted and resized
    r = client.post("/translate", data={"model": "strokes", "direction": "BtoA"},
                    files={"file": ("digit.png", buffer.getvalue(), "image/png")})
    out = _png(r)
    assert out.size == (32, 32) and out.text["condition"] == "translate digit.png"

    r = client.post("/translate", data={"model": "strokes"}, files={"file": ("x.png", b"not an image", "image/png")})
    assert r.status_code == 422 and "not a readable image" in r.json()["detail"]
    r = client.post("/translate", data={"model": "strokes"}, files={"file": ("x.png", b"", "image/png")})
    assert r.status_code == 422 and "empty" in r.json()["detail"]
    r = client.post("/translate", data={"model": "digits-cgan"}, files={"file": ("x.png", buffer.getvalue())})
    assert r.status_code == 422 and "use POST /generate" in r.json()["detail"]
    r = client.post("/translate", data={"model": "strokes"}, files={"file": ("big.png", b"0" * (9 << 20))})
    assert r.status_code == 413


def test_concurrent_requests_share_forward_passes(runs):
    """16 clients at once: fewer forward passes than requests, and each client gets its own seed's images."""
    app = create_app([runs["digits-cgan"]], watermark=False)
    served = app.state.models["digits-cgan"]
    from httpx import ASGITransport, AsyncClient

    async def main():
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as c:
            return await asyncio.gather(*(c.post("/generate", json={"model": "digits-cgan", "n": 2, "seed": s,
                                                                    "class": 1}) for s in range(16)))

    responses = asyncio.run(main())
    assert all(r.status_code == 200 for r in responses)
    assert served.batcher.batches < 16, served.batcher.batches
    alone = TestClient(create_app([runs["digits-cgan"]], watermark=False, batching=False))
    for seed in (0, 7, 15):
        r = alone.post("/generate", json={"model": "digits-cgan", "n": 2, "seed": seed, "class": 1})
        assert r.content == responses[seed].content  # batched with others, the same images as alone


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.serial  # a server process and a browser
def test_web_page_generates_in_a_real_browser(runs, tmp_path):
    status = os.environ.get("BELAMY_BROWSER_STATUS")  # set by .ci/run, which installs chromium beside the tests
    if status:
        deadline = time.time() + 600
        while not Path(status).exists() and time.time() < deadline:
            time.sleep(1)
        assert Path(status).exists() and Path(status).read_text().strip() == "ok", f"chromium install: {status}"
        from playwright import sync_api as playwright  # CI must run this test, not skip it
    else:
        playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        assert not status, "chromium installed but not on PATH"
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "belamy", "serve", str(runs["digits-cgan"]),
                               str(runs["shapes-t2i"]), "--port", str(port)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.querySelectorAll('#model option').length == 2")
            page.select_option("#class", "3")
            page.click("#generate")
            page.wait_for_selector("#output")
            size = page.evaluate("new Promise(r => { const i = document.getElementById('output');"
                                 " i.complete ? r([i.naturalWidth, i.naturalHeight]) :"
                                 " i.onload = () => r([i.naturalWidth, i.naturalHeight]); })")
            assert size == [4 * 18 + 2, 4 * 18 + 2]  # 16 images of 16 px in a 4 x 4 grid
            page.select_option("#model", "shapes-t2i")
            assert page.input_value("#prompt")  # an example prompt in the model's words
            page.fill("#prompt", "qwerty")
            page.click("#generate")
            page.wait_for_function("document.getElementById('error').textContent.includes('422')")
            page.screenshot(path=str(tmp_path / "page.png"))
            browser.close()
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "127.0.0.1" in log  # bound to localhost by default
    assert Path(tmp_path / "page.png").stat().st_size > 1000
