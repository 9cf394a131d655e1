"""One file per GAN method; importing this package registers them all in RECIPES."""

# Importing each recipe's module registers it.
from belamy.recipes import cgan, cyclegan, dcgan, gan, inpaint, pix2pix, sngan, srgan, text2img, wgan_gp  # noqa: F401
from belamy.recipes.base import RECIPES, Batch, Recipe, RecipeDefaults

__all__ = ["RECIPES", "Batch", "Recipe", "RecipeDefaults"]
