"""One file per GAN method; importing this package registers them all in RECIPES."""

from belamy.recipes import cgan, dcgan, gan, sngan, wgan_gp  # noqa: F401  (registration)
from belamy.recipes.base import RECIPES, Batch, Recipe, RecipeDefaults

__all__ = ["RECIPES", "Batch", "Recipe", "RecipeDefaults"]
