"""Every value of every choice field of RunConfig trains through ``train_run`` on smoke data, and
every invalid value is refused with a ConfigError that names the field, the value and the
choices: from Python and, as a one-line error with exit code 2, from the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from aecnn_utils.__main__ import main
from aecnn_utils.core.coerce import parse_overrides
from aecnn_utils.data.cache import RESIZE_MODES
from aecnn_utils.data.taxonomy import SCHEMES
from aecnn_utils.models import MODELS
from aecnn_utils.training.build import make_loss
from aecnn_utils.training.config import (
    MONITORS,
    OPTIMIZERS,
    PROTOCOLS,
    SCHEDULES,
    ConfigError,
    RunConfig,
)
from aecnn_utils.training.config import profile_config as _profile
from aecnn_utils.training.engine import train_run
from aecnn_utils.training.losses import LOSS_NAMES, WEIGHT_METHODS, FocalLoss, HybridLoss

# what a value needs besides itself to be a runnable smoke config
_COMPANIONS: dict[tuple[str, object], dict] = {
    ("protocol", "within"): {"val_fraction": 0.3, "test_fraction": 0.3},
    ("protocol", "kfold"): {"n_folds": 3},
    ("protocol", "adapt"): {"train": ("sipakmed", "herlev"), "val": ("herlev",),
                            "test": ("herlev",), "train_cells": 30},  # joint training
    ("scheme", "three_tier"): {"protocol": "within", "train": ("herlev",), "val_fraction": 0.3,
                               "test_fraction": 0.3},  # SIPaKMeD has no high-grade class
    ("scheme", "native"): {"protocol": "within", "train": ("cric",), "val_fraction": 0.3,
                           "test_fraction": 0.3},
}
CASES = [(name, value) for name, values in (
    ("loss", LOSS_NAMES), ("weight_method", WEIGHT_METHODS), ("resize_mode", RESIZE_MODES),
    ("optimizer", OPTIMIZERS), ("schedule", SCHEDULES), ("monitor", tuple(MONITORS)),
    ("scheme", SCHEMES), ("protocol", PROTOCOLS), ("model", tuple(MODELS)),
    ("focal_alpha", (None, "weights", 0.25))) for value in values]


def _smoke(root: Path, **changes: object) -> RunConfig:
    base = {"data_root": str(root), "image_size": 32, "epochs": 1, "batch_size": 16,
            "n_boot": 20, "num_workers": 0}
    return _profile("smoke", **{**base, **changes})


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v}" for n, v in CASES])
def test_every_choice_trains(name: str, value: object, synthetic_root: Path, tmp_path: Path,
                             cache_dir: Path) -> None:
    changes = {name: value, **_COMPANIONS.get((name, value), {})}
    if name == "weight_method":
        changes["loss"] = "weighted_ce"  # the class weights are used
    if name == "model":
        changes["image_size"] = 64  # the smoke profile's size (EfficientNet-B3 overflows at 32)
    config = _smoke(synthetic_root, **changes)
    result = train_run(config, tmp_path, cache_dir=cache_dir, progress=False)
    saved = RunConfig.load(result.run_dir / "config.yaml")
    assert getattr(saved, name) == getattr(config, name) == value
    assert result.metrics["epochs_run"] == 1 and len(result.history) == 1
    assert (result.run_dir / "predictions_test.csv").is_file()
    last = torch.load(result.run_dir / "last.pt", weights_only=True)
    if name == "optimizer":  # SGD keeps a momentum buffer, AdamW its moments
        state = next(iter(last["optimizer"]["state"].values()))
        assert ("exp_avg" in state) == (value == "adamw")
    if name == "model":
        assert last["model_name"] == value


def test_loss_follows_the_config(synthetic_root: Path) -> None:
    counts = torch.tensor([30, 10])
    config = _smoke(synthetic_root)
    hybrid = make_loss(config, counts)
    assert isinstance(hybrid, HybridLoss)
    assert hybrid.weighted_ce.weight.tolist() == pytest.approx([0.5, 1.5])
    focal = make_loss(config.replace(loss="focal", focal_alpha=0.25, gamma=1.0), counts)
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.0
    assert focal.alpha.tolist() == pytest.approx([0.75, 0.25])
    plain = make_loss(config.replace(loss="ce"), counts)
    logits, target = torch.randn(8, 2), torch.randint(0, 2, (8,))
    assert float(plain(logits, target)) == pytest.approx(
        float(torch.nn.functional.cross_entropy(logits, target)), rel=1e-6)


BAD = [("loss", "dice"), ("weight_method", "sqrt"), ("resize_mode", "crop"),
       ("optimizer", "lbfgs"), ("schedule", "step"), ("monitor", "val_acc"),
       ("scheme", "five"), ("protocol", "loo"), ("model", "vgg16"), ("train", "mnist"),
       ("focal_alpha", "half"), ("device", "tpu"), ("profile", "gpu"), ("input_mode", "hsv"),
       ("stain_norm", "vahadane")]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v}" for n, v in BAD])
def test_invalid_choice_names_field_value_and_choices(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{name}='{value}' is not valid; choose one of: "):
        RunConfig(**{name: value})


@pytest.mark.parametrize(("changes", "match"), [
    ({"epochs": "ten"}, r"epochs='ten' is not valid: epochs must be int"),
    ({"amp": "yes"}, r"amp='yes' is not valid: amp must be bool"),
    ({"gamma": -1.0}, r"gamma=-1.0 is not valid"),
    ({"mixup": -0.2}, r"mixup=-0.2 is not valid"),
    ({"augment": {"p_zoom": 2.0}}, r"augment=.* is not valid: AugmentConfig.p_zoom must be a "),
    ({"lambda_w": 0.0, "lambda_f": 0.0}, r"lambda_w \+ lambda_f > 0"),
    ({"focal_alpha": 0.3, "scheme": "native", "protocol": "within", "train": ("herlev",)},
     r"focal_alpha=0.3 needs scheme='binary'"),
    ({"warmup_epochs": 5, "epochs": 5}, r"warmup_epochs < epochs"),
    ({"image_size": 16}, r"image_size=16 is not valid: image_size must be >= 32"),
    ({"val_fraction": 1.0}, r"val_fraction=1.0 is not valid: it must be in \(0, 1\)"),
    ({"augment": {"p_noise": 2.0}}, r"augment=.* is not valid: .*p_noise"),
    ({"augment": {"p_sharpen": 0.5}}, r"augment=.* is not valid: .*p_sharpen.*fields: p_hflip"),
    ({"model_kwargs": {"attention": "global"}}, r"model_kwargs=.* not valid for aecnn"),
    ({"model_kwargs": {"depth": 3}}, r"model_kwargs=.* not valid for aecnn"),
    ({"seeds": "abc"}, r"seeds='abc' is not valid"),
])
def test_invalid_values_are_config_errors(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        _profile("smoke", **changes)


def test_text_values_are_converted() -> None:
    config = _profile("smoke", lr="1e-3", epochs="3", focal_alpha="0.5", seeds=["1", 2])
    assert (config.lr, config.epochs, config.focal_alpha, config.seeds) == (1e-3, 3, 0.5, (1, 2))


def test_parse_overrides_nested_and_yaml() -> None:
    assert parse_overrides(["lr=0.01", "train=[herlev]", "augment.p_noise=0.5",
                            "model_kwargs.attention=channel", "focal_alpha=null"]) == {
        "lr": 0.01, "train": ["herlev"], "augment": {"p_noise": 0.5},
        "model_kwargs": {"attention": "channel"}, "focal_alpha": None}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])


@pytest.mark.parametrize(("argv", "message"), [
    (["--set", "loss=dice"], "error: loss='dice' is not valid; choose one of: ce, weighted_ce, "
                             "focal, hybrid"),
    (["--set", "learning_rate=0.1"], "error: unknown config field(s) learning_rate"),
    (["--set", "epochs=ten"], "error: epochs='ten' is not valid: epochs must be int"),
    (["--set", "lr"], "error: --set expects key=value, got 'lr'"),
    (["--set", "augment.p_sharpen=1"], "error: augment={'p_sharpen': 1} is not valid"),
])
def test_cli_refuses_bad_values_in_one_line(argv: list[str], message: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--profile", "smoke", "--runs-dir", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_nested_override_reaches_the_run(synthetic_root: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    code = main(["train", "--profile", "smoke", "--data-root", str(synthetic_root),
                 "--runs-dir", str(tmp_path), "--epochs", "1", "--set", "image_size=32",
                 "n_boot=20", "num_workers=0", "loss=focal", "augment.p_noise=0",
                 "model_kwargs.attention=channel"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = [p.parent for p in tmp_path.glob("smoke/*/metrics.json")]
    saved = RunConfig.load(run_dir / "config.yaml")
    assert saved.loss == "focal" and saved.augment.p_noise == 0
    assert torch.load(run_dir / "best.pt", weights_only=True)["model_kwargs"] == {
        "attention": "channel"}


def test_base_layer_table_reaches_the_run_and_trains_channels_last_on_the_cpu(
        synthetic_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import aecnn_utils.training.engine as train_module
    from aecnn_utils.models import layer_table, load_trained_model

    formats = []
    make_model = train_module.make_model

    def spy(*args: object, **kwargs: object) -> nn.Module:
        model = make_model(*args, **kwargs)
        formats.append(model.stem[0].weight.is_contiguous(memory_format=torch.channels_last))
        return model

    monkeypatch.setattr(train_module, "make_model", spy)
    code = main(["train", "--profile", "smoke", "--data-root", str(synthetic_root),
                 "--runs-dir", str(tmp_path), "--epochs", "1", "--device", "cpu", "--set",
                 "image_size=32", "n_boot=20", "num_workers=0", "model_kwargs.layers=base"])
    assert code == 0, capsys.readouterr().err
    assert formats == [True]  # channels_last (the config's default) on the CPU too
    (run_dir,) = [p.parent for p in tmp_path.glob("smoke/*/metrics.json")]
    model, meta = load_trained_model(run_dir / "best.pt")
    assert meta["model_kwargs"] == {"layers": "base"}
    assert [r["channels"] for r in layer_table(model)] == [24, 32, 64, 128, 256, 384, 2]


def test_a_profiles_models_are_what_its_notebooks_train_by_default() -> None:
    """On ``cpu`` the notebooks train (or find published) AECNN and MobileNetV3-Small only;
    ResNet-50 and EfficientNet-B3 are named to be trained (on a GPU)."""
    from aecnn_utils.experiments.efficiency import efficiency_grid
    from aecnn_utils.models import MODELS
    from aecnn_utils.training.config import profile_models

    assert profile_models("cpu") == ["aecnn", "mobilenet_v3_small"]
    assert profile_models("smoke") == profile_models("paper") == list(MODELS)
    assert [a.name for a in efficiency_grid("cpu").arms] == [
        "AECNN (parallel)", "AECNN base (parallel)", "MobileNetV3-Small"]
    assert len(efficiency_grid("smoke").arms) == 5
