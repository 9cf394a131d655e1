"""`belamy serve`: trained models behind an HTTP API and a web page (FastAPI).

Safe by construction: the models are the folders given at start, loaded once and named by their folder names (a
request names a model from that fixed registry, so no path from a request reaches the filesystem); every field is
validated (422 with the field and the reason); uploads are bounded (413); requests for one model are batched into one
forward pass, with a bounded queue (503 when full). Every image it answers with carries belamy's PNG provenance and,
by default, the invisible watermark (belamy.provenance).
"""

from __future__ import annotations

import base64
import io
import math
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

import belamy
from belamy.pipelines.generator import GeneratorPipeline, slerp
from belamy.pipelines.image_to_image import ImageToImagePipeline
from belamy.provenance import embed_watermark, provenance_text, WATERMARK_NAME
from belamy.serve.batching import Batcher, Busy
from belamy.utils.images import make_grid, to_pil

MAX_IMAGES = 64  # per /generate request
MAX_UPLOAD_BYTES = 8 << 20  # per /translate request
MAX_UPLOAD_PIXELS = 4096 * 4096  # decoded size of an uploaded image


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    model: str = Field(description="a name from GET /models")
    n: int = Field(8, ge=1, le=MAX_IMAGES, description="images")
    seed: int = Field(0, ge=0, le=2 ** 63 - 1, description="names the latents")
    class_label: int | str | None = Field(None, alias="class", description="class index or name "
                                                                           "(class-conditional models)")
    prompt: str | None = Field(None, min_length=1, max_length=1000, description="text-to-image models")
    to_seed: int | None = Field(None, ge=0, le=2 ** 63 - 1, description="walk: the latents at t between seed's "
                                                                        "and to_seed's (slerp)")
    t: float = Field(0.0, ge=0.0, le=1.0, description="walk position, with to_seed")
    truncation: float | None = Field(None, gt=0.0, le=1.0, description="truncation trick, where a model has it")
    allow_unknown: bool = Field(False, description="generate even if no word of the prompt is known")
    format: Literal["png", "json"] = Field("png", description="one PNG grid, or JSON with one base64 PNG per image")


@dataclass
class ServedModel:
    name: str
    pipeline: Any  # GeneratorPipeline, TextToImagePipeline or ImageToImagePipeline
    batcher: Batcher | None  # models that sample

    def describe(self) -> dict[str, Any]:
        p, config = self.pipeline, self.pipeline.config
        task = config.get("task", "sample")
        conditioning = {"text": "text", "translate": "image", "upscale": "image", "inpaint": "image+mask"}.get(
            task, "class" if getattr(p, "num_classes", 0) else "none")
        info: dict[str, Any] = {"name": self.name, "kind": config.get("recipe"), "task": task,
                                "conditioning": conditioning, "resolution": p.data.shape[-1] if p.data.is_image
                                else None, "channels": p.data.shape[0], "truncation": False}
        if conditioning == "class":
            info["classes"] = list(p.data.class_names) or [str(i) for i in range(p.num_classes)]
        if conditioning == "text":
            info["vocabulary_size"] = len(p.data.vocabulary)
            info["example_prompt"] = p.example_prompt()
        if task == "translate" and config.get("recipe") == "cyclegan":
            info["directions"] = ["AtoB", "BtoA"]
        return info


def load_models(folders: Sequence[str | Path], device: str = "cpu", batching: bool = True,
                max_batch: int = MAX_IMAGES) -> dict[str, ServedModel]:
    """The registry: each folder loaded once, named by its folder name (names must differ)."""
    models: dict[str, ServedModel] = {}
    for folder in folders:
        name = Path(folder).resolve().name
        if name in models:
            raise ValueError(f"two models are named {name!r} ({folder}): serve folders with different names")
        pipeline = belamy.load(folder, device=device)
        samples = isinstance(pipeline, GeneratorPipeline)
        models[name] = ServedModel(name, pipeline, Batcher(pipeline, max_batch, enabled=batching) if samples
                                   else None)
    if not models:
        raise ValueError("no models to serve: give one or more run or model folders")
    return models


def create_app(folders: Sequence[str | Path], device: str = "cpu", watermark: bool = True, batching: bool = True,
               max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    from belamy import __version__

    models = load_models(folders, device, batching)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        for served in models.values():  # the batchers' loops end with the server
            if served.batcher is not None:
                await served.batcher.close()

    app = FastAPI(title="belamy", version=__version__, lifespan=lifespan,
                  description="Generate with trained GANs. Images carry PNG provenance metadata"
                  + (" and an invisible watermark." if watermark else "."))
    app.state.models = models

    def model(name: str) -> ServedModel:
        if name not in models:
            raise HTTPException(422, f"model {name!r} is not served here; models: {', '.join(models)}")
        return models[name]

    def png(image: Image.Image, text: dict[str, str]) -> bytes:
        from PIL import PngImagePlugin

        if watermark and min(image.size) >= 8:
            image, text = embed_watermark(image), {**text, "watermark": WATERMARK_NAME}
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info)
        return buffer.getvalue()

    @app.middleware("http")
    async def bound_uploads(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_upload_bytes + 65536:
            return JSONResponse({"detail": f"request body of {int(length)} bytes is over the limit of "
                                           f"{max_upload_bytes} bytes"}, status_code=413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files("belamy.serve").joinpath("static/index.html").read_text()

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "models": list(models), "watermark": watermark, "batching": batching}

    @app.get("/models")
    def list_models() -> list[dict[str, Any]]:
        return [m.describe() for m in models.values()]

    @app.post("/generate", responses={200: {"content": {"image/png": {}, "application/json": {}}}})
    async def generate(request: GenerateRequest) -> Response:
        served = model(request.model)
        p = served.pipeline
        if served.batcher is None:
            raise HTTPException(422, f"model {served.name!r} maps images to images: use POST /translate")
        if request.truncation is not None:
            raise HTTPException(422, f"model {served.name!r} ({p.config.get('recipe')}) has no truncation trick: "
                                     f"leave truncation out")
        if request.to_seed is None and request.t != 0:
            raise HTTPException(422, "t is a walk position: give to_seed with it")
        try:
            condition = p.conditions(request.n, request.class_label, request.prompt, request.allow_unknown)
        except ValueError as e:  # unknown class, a prompt for a class model, unknown words, ...
            raise HTTPException(422, str(e)) from None
        z = p.latents(request.n, request.seed)
        if request.to_seed is not None:
            t = torch.tensor([request.t])
            z = torch.cat([slerp(a, b, t) for a, b in zip(z, p.latents(request.n, request.to_seed))])
        try:
            images = await served.batcher.run(z, condition)
        except Busy as e:
            raise HTTPException(503, str(e)) from None
        described = request.prompt if request.prompt is not None else (
            None if request.class_label is None else f"class {request.class_label}")
        if request.to_seed is not None:
            described = f"{described or ''} walk to seed {request.to_seed} at t={request.t:g}".strip()
        text = provenance_text(p.config, request.seed, described, server="belamy serve")
        if not p.data.is_image:
            return JSONResponse({"model": served.name, "seed": request.seed, "points": images.tolist()})
        if request.format == "json":
            encoded = [base64.b64encode(png(im, text)).decode() for im in to_pil(images)]
            return JSONResponse({"model": served.name, "seed": request.seed, "images": encoded})
        grid = make_grid(images, nrow=math.ceil(math.sqrt(request.n)))
        return Response(png(grid, text), media_type="image/png")

    @app.post("/translate", responses={200: {"content": {"image/png": {}}}})
    async def translate(model_name: str = Form(..., alias="model", description="a name from GET /models"),
                        file: UploadFile = File(..., description="the input image"),
                        mask: UploadFile | None = File(None, description="inpainting: white = hole"),
                        direction: Literal["AtoB", "BtoA"] | None = Form(None)) -> Response:
        served = model(model_name)
        p = served.pipeline
        if not isinstance(p, ImageToImagePipeline):
            raise HTTPException(422, f"model {served.name!r} samples images: use POST /generate")
        image = await _read_image(file, max_upload_bytes, "file")
        try:
            if p.task == "inpaint":
                if mask is None:
                    raise HTTPException(422, "an inpainting model needs a mask upload (white = hole)")
                result = p.inpaint(image, await _read_image(mask, max_upload_bytes, "mask"))
            elif p.task == "upscale":
                result = p.upscale(image)
            else:
                result = p.translate(image, direction=direction, resize=True)
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        text = provenance_text(p.config, condition=f"{p.task} {Path(file.filename or 'upload').name}",
                               server="belamy serve")
        return Response(png(result, text), media_type="image/png")

    return app


async def _read_image(upload: UploadFile, limit: int, field: str) -> Image.Image:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{field}: the upload is over the limit of {limit} bytes")
    if not data:
        raise HTTPException(422, f"{field}: the upload is empty")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_UPLOAD_PIXELS:
                raise HTTPException(413, f"{field}: {image.width}x{image.height} pixels is over the limit of "
                                         f"{MAX_UPLOAD_PIXELS} pixels")
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise HTTPException(422, f"{field}: not a readable image ({e})") from None
