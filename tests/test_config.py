"""Config preparation: YAML-1.1 numbers, schema validation with the key named, defaults filled."""

import pytest
import yaml

from flops_fit.config import load_config, prepare_config
from flops_fit.errors import ConfigError

MINIMAL = {
    "model": {"class": "flops_fit.examples.gpt:GPT", "size_param": "d_model", "sizes": [16, 32, 64, 128]},
    "dataset": {"target": "flops_fit.examples.markov:MarkovTokens"},
    "loss": {"target": "flops_fit.examples.gpt:next_token_loss"},
    "budgets": [1.0e10],
}


def test_yaml_scientific_notation_becomes_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**MINIMAL, "budgets": ["1e10", "3e10"], "target_budgets": ["1e12"]}))
    assert yaml.safe_load(path.read_text())["budgets"][0] == "1e10"  # the trap we guard against
    config = load_config(path)
    assert config["budgets"] == [1e10, 3e10] and all(isinstance(b, float) for b in config["budgets"])
    assert config["target_budgets"] == [1e12]


def test_non_numeric_budget_names_the_key():
    with pytest.raises(ConfigError, match=r"budgets\[1\].*must be a number.*'lots'"):
        prepare_config({**MINIMAL, "budgets": [1e10, "lots"]})


def test_defaults_are_filled_at_every_level():
    config = prepare_config(MINIMAL)
    assert config["sweep"]["steps"] is None and config["sweep"]["batch"]["flops_exponent"] == pytest.approx(0.3271)
    assert config["sweep"]["placement"] == "adaptive" and config["sweep"]["lr_calibration"]["enabled"] is True
    assert config["training"]["optimizer"]["betas"] == [0.9, 0.95]
    assert config["training"]["checkpoint"]["every_minutes"] == 5.0
    assert config["eval_dataset"] == {"target": None, "kwargs": {}, "samples": 512}
    assert config["model"]["kwargs"] == {} and config["fit"]["bootstrap"] == 1000


@pytest.mark.parametrize(
    "change, key",
    [
        ({"budgets": []}, "budgets"),
        ({"sweep": {"flops_per_token": "7N"}}, "sweep.flops_per_token"),
        ({"model": {"class": "x:Y", "size_param": "d", "sizes": [1, 2, 3]}}, "model.sizes"),
        ({"trainig": {}}, "(top level)"),
    ],
)
def test_schema_errors_name_the_key(change, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(").replace(")", r"\)")):
        prepare_config({**MINIMAL, **change})


def test_shipped_configs_are_valid():
    for path in ("config/config.yaml", ".test/config/config.yaml"):
        assert load_config(path)["budgets"]


def test_a_numeric_choice_given_as_text_is_read_as_its_number():
    """`--config fit.degree=3` arrives as the text '3'; 'auto' stays a choice and a typo is named by the schema."""
    assert prepare_config({**MINIMAL, "fit": {"degree": "3"}})["fit"]["degree"] == 3
    assert prepare_config({**MINIMAL, "fit": {"degree": "auto"}})["fit"]["degree"] == "auto"
    with pytest.raises(ConfigError, match="fit.degree"):
        prepare_config({**MINIMAL, "fit": {"degree": "cubic"}})


def test_loss_floor_is_null_a_number_or_a_reference():
    assert prepare_config(MINIMAL)["fit"]["loss_floor"] is None
    assert prepare_config({**MINIMAL, "fit": {"loss_floor": "1.4"}})["fit"]["loss_floor"] == 1.4  # --config text
    reference = {"target": "flops_fit.examples.markov:entropy_rate", "kwargs": {"vocab_size": 96}}
    assert prepare_config({**MINIMAL, "fit": {"loss_floor": reference}})["fit"]["loss_floor"] == reference
    for bad, why in ((0, "0 is less than or equal to the minimum of 0"), ({"kwargs": {}}, "'target' is a required property"),
                     ({"target": "m:f", "kwarg": {}}, "'kwarg' was unexpected")):
        with pytest.raises(ConfigError, match=f"'fit.loss_floor': .*{why}"):
            prepare_config({**MINIMAL, "fit": {"loss_floor": bad}})


def test_the_default_config_floors_the_law_at_its_chains_entropy_rate():
    """The default sweep's floor is the entropy rate of the chain its dataset samples (the same kwargs),
    below the lowest held-out loss the default sweep has measured (1.464, README)."""
    from flops_fit.examples.markov import entropy_rate
    from flops_fit.validation import loss_floor

    config = load_config("config/config.yaml")
    assert config["fit"]["loss_floor"]["kwargs"] == config["dataset"]["kwargs"]
    floor = loss_floor(config)
    assert floor == entropy_rate(**config["dataset"]["kwargs"]) and 1.38 < floor < 1.464
