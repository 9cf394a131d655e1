"""Network building blocks (layers.py) and architectures, one file per family."""

from belamy.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from belamy.nets.mlp import MLPDiscriminator, MLPGenerator
from belamy.nets.patchgan import PatchDiscriminator, patch_receptive_field
from belamy.nets.resnet import ResNetDiscriminator, ResNetGenerator
from belamy.nets.srresnet import SRDiscriminator, SRResNetGenerator
from belamy.nets.translator import ResNetTranslator
from belamy.nets.unet import UNetGenerator

__all__ = ["DCGANDiscriminator", "DCGANGenerator", "MLPDiscriminator", "MLPGenerator", "PatchDiscriminator",
           "ResNetDiscriminator", "ResNetGenerator", "ResNetTranslator", "SRDiscriminator", "SRResNetGenerator",
           "UNetGenerator", "patch_receptive_field"]
