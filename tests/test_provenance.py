"""Provenance: every PNG belamy writes names its maker, and the invisible watermark survives JPEG and resizing."""

import io
import json

import numpy as np
import pytest
from PIL import Image

import belamy
from belamy.data import open_data
from belamy.provenance import THRESHOLD, detect_watermark, embed_watermark, read_provenance
from belamy.utils.images import to_pil

from helpers import TINY_DCGAN, cli


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def _psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(i.convert("RGB"), np.float64) for i in (a, b))
    return float(10 * np.log10(255 ** 2 / max(np.mean((x - y) ** 2), 1e-12)))


# PSNR of marked vs original, mean and worst over the images (measured 38.7 / 31 on shapes; binary-like digits with
# black backgrounds leave the mark less room: 26 / 21)
@pytest.mark.parametrize("name,resolution,mean_psnr,min_psnr", [("shapes", 64, 37.0, 29.0), ("mnist", 32, 25.0, 19.0)])
def test_watermark_survives_jpeg_and_resizing_and_is_absent_from_other_images(name, resolution, mean_psnr, min_psnr):
    images = to_pil(open_data(name, resolution=resolution).images[:40].float() / 127.5 - 1)
    unmarked = [detect_watermark(im).z for im in images]
    assert max(unmarked) < THRESHOLD and abs(np.mean(unmarked)) < 0.6, unmarked  # z ~ N(0, 1) without the mark
    psnr = []
    for image in images:
        marked = embed_watermark(image)
        assert marked.size == image.size and marked.mode == image.mode
        psnr.append(_psnr(image, marked))
        resized = marked.resize((int(image.width * 0.85), int(image.height * 0.85)), Image.BICUBIC)
        for seen in (marked, _jpeg(marked, 75), resized):
            assert detect_watermark(seen).marked, detect_watermark(seen)
        assert not detect_watermark(marked, key=12345).marked  # another key does not read it
    assert np.mean(psnr) > mean_psnr and min(psnr) > min_psnr, (np.mean(psnr), min(psnr))


def test_watermark_keeps_alpha_and_refuses_tiny_images():
    image = Image.new("RGBA", (48, 40), (200, 30, 30, 128))
    marked = embed_watermark(image)
    assert marked.mode == "RGBA" and marked.getchannel("A").getextrema() == (128, 128)
    assert detect_watermark(marked).marked
    with pytest.raises(ValueError, match="4x4 pixels is too small"):
        embed_watermark(Image.new("RGB", (4, 4)))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return belamy.train(**{**TINY_DCGAN, "sample_every": 2}, steps=4, out=str(tmp_path_factory.mktemp("runs")),
                        name="prov")


def test_every_written_image_names_its_maker_and_detect_reads_it(tiny_run, tmp_path):
    preview = read_provenance(tiny_run.path / "samples.png")  # the engine's sample grid
    assert preview["generator"] == "belamy" and preview["model"] == "prov" and preview["run_id"].startswith("prov@")

    out = tmp_path / "marked.png"
    r = cli("sample", str(tiny_run.path), "--n", "16", "--seed", "7", "--out", str(out), "--watermark")
    assert r.returncode == 0, r.stderr
    meta = read_provenance(out)
    assert meta["generator"] == "belamy" and meta["model"] == "prov" and meta["seed"] == "7"
    assert meta["recipe"] == "dcgan" and len(meta["config_hash"]) == 16 and meta["watermark"].startswith("belamy")
    r = cli("sample", str(tiny_run.path), "--n", "4", "--seed", "7", "--out", str(tmp_path / "plain.png"))
    assert read_provenance(tmp_path / "plain.png")["config_hash"] == meta["config_hash"]  # same model, same hash

    # Re-encoded as JPEG the metadata is gone, the watermark is not; an unmarked image reads as such.
    _jpeg(Image.open(out), 80).save(tmp_path / "shared.jpg", quality=80)
    r = cli("detect", str(out), str(tmp_path / "shared.jpg"), str(tmp_path / "plain.png"), "--json")
    assert r.returncode == 0, r.stderr
    marked, shared, plain = (json.loads(line) for line in r.stdout.splitlines())
    assert marked["watermark"] and marked["metadata"]["seed"] == "7"
    assert shared["watermark"] and shared["metadata"] == {}
    assert not plain["watermark"] and plain["metadata"]["generator"] == "belamy"
    r = cli("detect", str(out))
    assert "watermark: marked" in r.stdout and "run_id" in r.stdout

    (tmp_path / "broken.png").write_bytes(b"not an image")
    r = cli("detect", str(tmp_path / "broken.png"))
    assert r.returncode == 1 and "broken.png" in r.stderr

