"""Inference objects that `belamy.load` returns."""

from belamy.pipelines.generator import GeneratorPipeline, LoadError, slerp

__all__ = ["GeneratorPipeline", "LoadError", "slerp"]
