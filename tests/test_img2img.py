"""Image-to-image GANs: the recipes learn their task (figures past thresholds an untrained model misses), the
pipelines and the translate/upscale/inpaint commands work on files and folders, and bad input is refused clearly."""

import json
import shutil

import pytest
import torch
from PIL import Image

import belamy
from belamy.data import open_data
from belamy.losses import d_relativistic_average, g_relativistic_average
from belamy.metrics.image_to_image import evaluate_image_to_image
from belamy.recipes.cyclegan import HistoryPool
from belamy.recipes.inpaint import box_masks, stroke_masks

from helpers import cli, same_tensors, tensors

QUIET = {"progress": False, "sample_every": 0, "log_every": 50, "ckpt_every": 0}
TINY_UNET = {"width": 16, "d_width": 16}


# --- trained models, shared by the tests below (one short training each) ------------------------------------------

@pytest.fixture(scope="module")
def pix2pix_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return belamy.train(model="pix2pix", data="edges2mnist", steps=300, batch_size=32, options=TINY_UNET,
                        out=str(out), name="p2p", **QUIET)


@pytest.fixture(scope="module")
def srgan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return belamy.train(model="srgan", data="mnist:train", resolution=32, steps=120, batch_size=16, out=str(out),
                        name="sr", options={"scale": 2, "width": 32, "blocks": 4, "d_width": 16}, **QUIET)


@pytest.fixture(scope="module")
def inpaint_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return belamy.train(model="inpaint", data="mnist:train", resolution=32, steps=100, batch_size=32,
                        options=TINY_UNET, out=str(out), name="inp", **QUIET)


# --- learning ----------------------------------------------------------------------------------------------------

def test_pix2pix_edges2mnist_preserves_the_digit(pix2pix_run):
    model = belamy.load(pix2pix_run.path)
    result = evaluate_image_to_image(model, "edges2mnist:test", n=500)
    # The in-domain classifier recognizes the intended digit in the outputs (an untrained U-Net: 33%, its skips
    # pass the edges through; FID 1023, PSNR 6.6 dB).
    assert result["classifier_accuracy"] > 0.9
    assert result["label_accuracy"] >= 0.85, result
    assert result["ssim"] > 0.6, result
    assert 0 < result["fid_classifier"] < 300, result  # in-domain FID to real test digits: 152 here, untrained 1023


def test_srgan_beats_bicubic_on_held_out_digits(srgan_run):
    result = evaluate_image_to_image(belamy.load(srgan_run.path), "mnist:test", n=300)
    assert result["scale"] == 2
    # G starts as bicubic upsampling: beating it by 2 dB means it learned to sharpen (measured: 29.3 dB, bicubic 25.5).
    assert result["psnr"] > result["psnr_bicubic"] + 2.0, result
    assert result["ssim"] > result["ssim_bicubic"], result


def test_inpainting_beats_mean_fill_inside_the_hole(inpaint_run):
    result = evaluate_image_to_image(belamy.load(inpaint_run.path), "mnist:test", n=300, seed=1)
    assert result["psnr_hole"] > result["psnr_hole_mean_fill"] + 1.0, result  # measured 12.5 dB, mean fill 10.7


def test_cyclegan_translates_both_ways(tmp_path):
    """mnist-strokes (thin <-> thick digits, unpaired): after a short run the translations keep their digit both
    ways (an untrained model: 16-18%), change the stroke width towards the other domain, and cycles reconstruct
    (untrained: L1 0.86)."""
    run = belamy.train(model="cyclegan", data="mnist-strokes", batch_size=8, steps=120, out=str(tmp_path),
                       options={"width": 8, "d_width": 8, "blocks": 2}, **QUIET)
    model = belamy.load(run.path)
    result = evaluate_image_to_image(model, "mnist-strokes:test", n=300)
    assert result["label_accuracy_a_to_b"] >= 0.7 and result["label_accuracy_b_to_a"] >= 0.7, result
    assert result["cycle_l1_a_to_b"] < 0.2 and result["cycle_l1_b_to_a"] < 0.2, result
    test = open_data("mnist-strokes:test")
    thin, thick = test.inputs[:200].float() / 127.5 - 1, test.images[:200].float() / 127.5 - 1
    thickened, thinned = model.translate(thin), model.translate(thick, direction="BtoA")
    # ink (mean brightness) moves from the source domain's towards the target domain's
    assert float(thickened.mean()) > float(thin.mean()) + 0.5 * float(thick.mean() - thin.mean())
    assert float(thinned.mean()) < float(thick.mean()) - 0.5 * float(thick.mean() - thin.mean())


def test_cyclegan_resumes_exactly(tmp_path):
    """A run stopped and resumed (history pools, domain A's order, the hold-then-decay rates) ends with the same
    weights as an uninterrupted one."""
    options = {"width": 8, "d_width": 8, "blocks": 2, "pool_size": 10}
    # On CPU: CUDA's reflection-padding backward adds with atomics, in no fixed order, so GPU runs are not bitwise
    # repeatable, resumed or not.
    whole = belamy.train(model="cyclegan", data="mnist-strokes", batch_size=8, options=options, out=str(tmp_path),
                         steps=40, name="whole", device="cpu", **{**QUIET, "ckpt_every": 20})
    # The same run as if it had been killed after step 20: its newest checkpoint is step 20's.
    shutil.copytree(whole.path, tmp_path / "cut")
    shutil.rmtree(tmp_path / "cut" / "checkpoints" / "step-0000040")
    (tmp_path / "cut" / "model.safetensors").unlink()
    resumed = belamy.train(resume=tmp_path / "cut", progress=False)
    assert same_tensors(tensors(whole.path / "model.safetensors"), tensors(resumed.path / "model.safetensors"))
    log = [json.loads(line) for line in (resumed.path / "log.jsonl").read_text().splitlines()]
    rates = [r["lr_g"] for r in log if "lr_g" in r]
    assert rates and rates[-1] < 2e-4  # decaying in the second half of the run


# --- pieces --------------------------------------------------------------------------------------------------------

def test_masks_are_holes_of_the_documented_sizes():
    g = torch.Generator().manual_seed(0)
    boxes = box_masks(torch.rand(64, 4, generator=g), 32)
    area = boxes.mean((1, 2, 3))
    assert boxes.shape == (64, 1, 32, 32) and set(boxes.unique().tolist()) == {0.0, 1.0}
    assert 0.25**2 * 0.8 <= float(area.min()) and float(area.max()) <= 0.5**2 * 1.2
    strokes = stroke_masks(torch.rand(64, 5, 3, generator=g), 32)
    assert strokes.shape == (64, 1, 32, 32) and bool((strokes.mean((1, 2, 3)) > 0.03).all())


def test_history_pool_fills_then_swaps_half():
    pool = HistoryPool(4, (1, 2, 2))
    first = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2)
    assert torch.equal(pool.query(first, torch.rand(4, 2)), first) and int(pool.count) == 4
    new = torch.full((2, 1, 2, 2), 9.0)
    out = pool.query(new, torch.tensor([[0.9, 0.0], [0.1, 0.6]]))  # keep the first, swap the second with slot 2
    assert torch.equal(out[0], new[0]) and torch.equal(out[1], first[2])
    assert float(pool.images[2, 0, 0, 0]) == 9.0


def test_relativistic_average_losses_by_hand():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 1.0])
    sp = torch.nn.functional.softplus
    d = 0.5 * (sp(-(real - 0.0)).mean() + sp(fake - 1.0).mean())  # mean(fake) = 0, mean(real) = 1
    g = 0.5 * (sp(real - 0.0).mean() + sp(-(fake - 1.0)).mean())
    assert torch.allclose(d_relativistic_average(real, fake), d)
    assert torch.allclose(g_relativistic_average(real, fake), g)


def test_unpaired_stream_draws_every_domain_a_image(tmp_path):
    from belamy.train.stream import RealStream

    data = open_data("mnist-strokes")
    stream = RealStream(data, 100, seed=0, device=torch.device("cpu"))
    seen = torch.cat([stream.next(torch.Generator())[2] for _ in range(len(data) // 100)])
    assert seen.shape == (len(data), 1, 32, 32)
    a = data.inputs.float() / 127.5 - 1
    assert torch.equal(seen.flatten(1).sum(1).sort().values, a.flatten(1).sum(1).sort().values)


def test_recipes_refuse_data_they_cannot_use():
    with pytest.raises(ValueError, match="paired image-to-image data"):
        belamy.train(model="pix2pix", data="mnist", steps=1, **QUIET)
    with pytest.raises(ValueError, match="scale must be 2 or 4"):
        belamy.train(model="srgan", data="mnist", steps=1, options={"scale": 3}, **QUIET)
    with pytest.raises(ValueError, match="not divisible by scale 4"):
        belamy.train(model="srgan", data="digits", resolution=10, steps=1, **QUIET)
    with pytest.raises(ValueError, match="a folder of mask images"):
        belamy.train(model="inpaint", data="mnist", steps=1, options={"masks": "ovals"}, **QUIET)


# --- using trained models ------------------------------------------------------------------------------------------

def test_pipelines_refuse_bad_input_with_clear_messages(pix2pix_run, inpaint_run):
    p2p = belamy.load(pix2pix_run.path)
    with pytest.raises(ValueError, match="multiples of 32"):
        p2p.translate(Image.new("L", (30, 30)))
    assert p2p.translate(Image.new("L", (30, 30)), resize=True).size == (32, 32)
    with pytest.raises(ValueError, match="translates AtoB only"):
        p2p.translate(Image.new("L", (32, 32)), direction="BtoA")
    with pytest.raises(ValueError, match="does not upscale"):
        p2p.upscale(Image.new("L", (32, 32)))
    inp = belamy.load(inpaint_run.path)
    with pytest.raises(ValueError, match="same size"):
        inp.inpaint(Image.new("L", (32, 32)), Image.new("L", (64, 64)))
    # an RGBA image with a mask: the known pixels come back unchanged
    image = Image.new("RGBA", (64, 32), (200, 200, 200, 255))
    mask = Image.new("L", (64, 32), 0)
    mask.paste(255, (10, 10, 20, 20))
    out = inp.inpaint(image, mask)
    assert out.size == (64, 32) and out.getpixel((0, 0)) == 200


def test_upscale_in_tiles_matches_one_pass(srgan_run):
    model = belamy.load(srgan_run.path)
    low = open_data("mnist:test", resolution=16).images[:12].float() / 127.5 - 1
    big = torch.cat([torch.cat(list(low[i * 4:(i + 1) * 4]), dim=2) for i in range(3)], dim=1)[None]  # 48x64
    whole = model.upscale(big, tile=1000)
    tiled = model.upscale(big, tile=24, overlap=8)
    assert whole.shape == tiled.shape == (1, 1, 96, 128)
    assert float((whole - tiled).abs().max()) < 0.05  # blended seams: no visible difference (8-bit step 0.008)


def test_translate_upscale_inpaint_commands_on_files_and_folders(tmp_path, pix2pix_run, srgan_run, inpaint_run):
    test = open_data("edges2mnist:test")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(3):
        Image.fromarray(test.inputs[i, 0].numpy()).save(inputs / f"e{i}.png")
    (inputs / "broken.png").write_bytes(b"not a png")
    r = cli("translate", str(pix2pix_run.path), "--input", str(inputs), "--out", str(tmp_path / "out"))
    assert r.returncode == 1 and "broken.png" in r.stderr and "2 images" not in r.stdout
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["e0.png", "e1.png", "e2.png"]
    with Image.open(tmp_path / "out" / "e0.png") as im:
        assert im.size == (32, 32) and im.text["generator"] == "belamy"
        assert im.text["condition"] == "translate e0.png" and im.text["model"] == pix2pix_run.path.name

    r = cli("upscale", str(srgan_run.path), "--input", str(inputs / "e0.png"), "--out", str(tmp_path / "up.png"))
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "up.png") as im:
        assert im.size == (64, 64)

    Image.new("L", (32, 32), 0).save(tmp_path / "mask.png")
    r = cli("inpaint", str(inpaint_run.path), "--input", str(inputs / "e1.png"), "--mask", str(tmp_path / "mask.png"),
            "--out", str(tmp_path / "filled.png"))
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "filled.png") as im, Image.open(inputs / "e1.png") as original:
        assert im.tobytes() == original.tobytes()  # an empty mask changes nothing

    masks = tmp_path / "masks"  # a folder of masks named like the inputs: e2 has none, which is reported
    masks.mkdir()
    for name in ("e0", "e1"):
        Image.new("L", (32, 32), 255).save(masks / f"{name}.png")
    r = cli("inpaint", str(inpaint_run.path), "--input", str(inputs), "--mask", str(masks), "--out",
            str(tmp_path / "filled"))
    assert r.returncode == 1 and "no mask named e2" in r.stderr and "broken.png" in r.stderr
    assert sorted(p.name for p in (tmp_path / "filled").iterdir()) == ["e0.png", "e1.png"]
    r = cli("upscale", str(srgan_run.path), "--input", str(inputs), "--out", str(tmp_path / "up"), "--tile", "16",
            "--overlap", "4")
    assert sorted(p.name for p in (tmp_path / "up").iterdir()) == ["e0.png", "e1.png", "e2.png"]

    r = cli("eval", str(pix2pix_run.path), "--n", "200")
    assert r.returncode == 0, r.stderr
    figures = json.loads((pix2pix_run.path / "metrics.json").read_text())
    assert figures["data"] == "edges2mnist:test" and figures["label_accuracy"] > 0.8


def test_srgan_options_relativistic_and_perceptual_loss(tmp_path):
    """ESRGAN's relativistic D and a feature loss in the space of a feature network given by its weights file (here
    FID-Inception with random weights the test saves)."""
    from safetensors.torch import save_file

    from belamy.metrics.extractors.inception import FIDInceptionV3

    torch.manual_seed(0)
    weights = tmp_path / "inception.safetensors"
    save_file({k: v.contiguous() for k, v in FIDInceptionV3().state_dict().items()}, str(weights))
    run = belamy.train(model="srgan", data="mnist:train", resolution=16, steps=2, batch_size=2, out=str(tmp_path),
                       options={"scale": 2, "width": 8, "blocks": 1, "d_width": 8, "relativistic": True,
                                "perceptual": "inception", "perceptual_weights": str(weights)},
                       **{**QUIET, "log_every": 1})
    records = [json.loads(line) for line in (run.path / "log.jsonl").read_text().splitlines()]
    figures = [r for r in records if "perceptual" in r]
    assert len(figures) == 2 and all(r["perceptual"] > 0 and r["grad_norm_g"] > 0 for r in figures)
    assert not any("Mixed" in k or "Conv2d" in k for k in tensors(run.path / "model.safetensors"))  # not saved


def test_folders_from_disk_train_every_layout_from_the_cli(tmp_path):
    """pix2pix on the aligned A|B format, cyclegan on trainA/trainB, inpainting with masks read from a folder,
    super-resolution on a plain folder read on the fly."""
    digits = open_data("edges2mnist").images[:24, 0].numpy()
    aligned, unpaired, masks = tmp_path / "aligned" / "train", tmp_path / "unpaired", tmp_path / "masks"
    for folder in (aligned, unpaired / "trainA", unpaired / "trainB", masks):
        folder.mkdir(parents=True)
    for i, digit in enumerate(digits):
        pair = Image.new("L", (64, 32))
        pair.paste(Image.fromarray(255 - digit), (0, 0))
        pair.paste(Image.fromarray(digit), (32, 0))
        pair.save(aligned / f"{i}.png")
        Image.fromarray(digit).save(unpaired / ("trainA" if i % 2 else "trainB") / f"{i}.png")
    hole = Image.new("L", (32, 32), 0)
    hole.paste(255, (8, 8, 20, 20))
    hole.save(masks / "box.png")
    runs = tmp_path / "runs"
    for args in (("--model", "pix2pix", "--data", str(tmp_path / "aligned"), "--channels", "1"),
                 ("--model", "cyclegan", "--data", str(unpaired), "--channels", "1", "-o", "blocks=1"),
                 ("--model", "inpaint", "--data", "mnist:train", "-o", f"masks={masks}"),
                 ("--model", "srgan", "--data", str(unpaired / "trainA"), "--channels", "1", "--no-cache",
                  "-o", "blocks=1")):  # a folder decoded on the fly
        r = cli("train", *args, "--resolution", "32", "--steps", "2", "--batch-size", "4", "-o", "width=8",
                "-o", "d_width=8", "--out", str(runs), "--no-progress")
        assert r.returncode == 0, r.stderr
    config = json.loads((runs / "pix2pix-aligned" / "config.json").read_text())
    assert config["data"]["pairing"] == "paired" and config["task"] == "translate"
    assert json.loads((runs / "cyclegan-unpaired" / "config.json").read_text())["data"]["pairing"] == "unpaired"
    r = cli("train", "--model", "pix2pix", "--data", str(tmp_path / "masks"), "--steps", "1", "--out", str(runs))
    assert r.returncode == 1 and "expected A|B side by side" in r.stderr
