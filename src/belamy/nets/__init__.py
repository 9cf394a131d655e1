"""Network building blocks (layers.py) and architectures, one file per family."""

from belamy.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from belamy.nets.mlp import MLPDiscriminator, MLPGenerator
from belamy.nets.resnet import ResNetDiscriminator, ResNetGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator", "ResNetDiscriminator",
           "ResNetGenerator"]
