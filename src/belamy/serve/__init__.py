"""`belamy serve`: an HTTP API and a web page over trained models (needs the `serve` extra: FastAPI, uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def serve(folders: Sequence[str | Path], host: str = "127.0.0.1", port: int = 8000, device: str = "cpu",
          watermark: bool = True, batching: bool = True) -> None:
    """Load the models once and serve them until interrupted (localhost only unless `host` says otherwise)."""
    import uvicorn

    from belamy.serve.app import create_app

    uvicorn.run(create_app(folders, device, watermark, batching), host=host, port=port, log_level="info")
