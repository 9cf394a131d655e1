"""Typed config: YAML round trip, CLI-style overrides, errors that name the field and the value."""

import pytest

from belamy.config import ConfigError, TrainConfig, parse_value
from belamy.registry import Registry, UnknownNameError
from belamy.train import resolve_config


def test_yaml_round_trip(tmp_path):
    config = TrainConfig(model="wgan-gp", data="digits", betas=(0.0, 0.9), options={"gp_weight": 5.0}, steps=7)
    config.save(tmp_path / "c.yaml")
    assert TrainConfig.load(tmp_path / "c.yaml") == config


def test_overrides_and_type_coercion():
    config = TrainConfig().replace(steps=10.0, lr_g="1e-4", options={"latent_dim": 8})
    assert config.steps == 10 and isinstance(config.steps, int)
    assert config.lr_g == pytest.approx(1e-4)
    assert config.replace(options={"g_width": 4}).options == {"latent_dim": 8, "g_width": 4}


@pytest.mark.parametrize("field,value,message", [
    ("steps", "many", "field 'steps' expects an integer"),
    ("batch_size", 0, "field 'batch_size' must be > 0"),
    ("precision", "fp8", "field 'precision' must be auto, fp32, bf16 or fp16"),
    ("channels", 2, "field 'channels' must be 1 or 3"),
    ("betas", [0.5], "field 'betas' expects 2 values"),
    ("hflip", "yes", "field 'hflip' expects true or false"),
    ("name", "../escape", "plain folder name"),
])
def test_bad_values_are_named(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_dict({field: value})


def test_unknown_field_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="unknown field.*stpes"):
        TrainConfig.from_dict({"stpes": 3})
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        TrainConfig.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.load(tmp_path / "missing.yaml")


def test_parse_value():
    assert parse_value("3") == 3 and parse_value("1e-4") == pytest.approx(1e-4)
    assert parse_value("true") is True and parse_value("[0.5, 0.9]") == [0.5, 0.9] and parse_value("abc") == "abc"


def test_resolve_fills_recipe_defaults_and_validates_options():
    resolved = resolve_config(TrainConfig(model="wgan-gp"))
    assert (resolved.loss, resolved.d_steps, resolved.betas, resolved.lr_g) == ("wasserstein", 5, (0.0, 0.9), 1e-4)
    assert resolved.options["gp_weight"] == 10.0
    assert (resolved.batch_size, resolved.lr_decay) == (64, "none")
    assert resolve_config(TrainConfig(model="wgan-gp", d_steps=2)).d_steps == 2
    with pytest.raises(ConfigError, match="recipe 'dcgan' has no option.*latnt_dim.*latent_dim"):
        resolve_config(TrainConfig(model="dcgan", options={"latnt_dim": 3}))
    with pytest.raises(ConfigError, match="option 'g_width' of recipe 'dcgan' expects an integer"):
        resolve_config(TrainConfig(model="dcgan", options={"g_width": "wide"}))
    with pytest.raises(UnknownNameError, match="Did you mean 'hinge'"):
        resolve_config(TrainConfig(loss="hnge"))


def test_registry_suggests_and_lists():
    r: Registry[int] = Registry("thing")
    r.register("alpha", "first")(1)
    r.register("beta")(2)
    assert r.get("alpha") == 1 and r.names() == ["alpha", "beta"] and r.summary("alpha") == "first"
    with pytest.raises(UnknownNameError) as e:
        r.get("alpah")
    assert "Did you mean 'alpha'?" in str(e.value) and "alpha, beta" in str(e.value)
    with pytest.raises(ValueError, match="twice"):
        r.register("alpha")(3)
