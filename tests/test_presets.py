"""Presets: each parses, starts, and names the README row it reproduces; the README names each; bad ones are
refused in one line."""

import json

import pytest

from conftest import REPO, option_flags
from keras_ae import presets, train
from keras_ae.models import MODELS

README = (REPO / "README.md").read_text()


@pytest.mark.parametrize("name", presets.names())
def test_a_preset_says_what_it_reproduces_and_the_readme_names_it(name):
    about = presets.about(name)
    assert about["figure"] and about["row"].startswith("README") and about["minutes"] > 0
    assert f"`{name}`" in README


@pytest.mark.parametrize("name", presets.names())
def test_a_preset_parses_and_starts(name, mnist_small, tmp_path, monkeypatch):
    """A few steps of each preset on its own data and flags, with the model at its test size."""
    monkeypatch.setenv("KERAS_AE_DATA", str(mnist_small.parent))
    flags = train.parse_args(["--config", name])
    run_dir = tmp_path / "run"
    assert train.main(["--config", name, *option_flags(MODELS[flags.model]), "--limit", "64", "--epochs", "1",
                       "--steps-per-epoch", "1", "--batch-size", "16", "--no-evaluate", "--no-export",
                       "--run-dir", str(run_dir), "--verbose", "0"]) == 0
    config = json.loads((run_dir / "config.json").read_text())["options"]
    assert config["model"] == flags.model and config["dataset"] == flags.dataset


def test_list_presets_shows_each_with_its_figure_and_time(capsys):
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--list-presets"])
    out = capsys.readouterr().out
    assert stop.value.code == 0
    for name in presets.names():
        assert f"{name}\n    reached: {presets.about(name)['figure']}" in out


def test_an_unknown_preset_is_refused_with_the_known_ones(capsys):
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--config", "vae-on-the-moon"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert stop.value.code == 2 and "unknown preset 'vae-on-the-moon'" in err
    assert all(name in err for name in presets.names())


def test_a_preset_whose_flags_no_longer_exist_is_refused_naming_them(tmp_path, monkeypatch, capsys):
    (tmp_path / "old.toml").write_text('model = "vae"\niwae-k-max = 5\n\n[preset]\nrow = "README"\nfigure = "x"\n'
                                       'minutes = 1\nmeasured = "then"\n')
    monkeypatch.setattr(presets, "FOLDER", tmp_path)
    with pytest.raises(SystemExit) as stop:
        train.parse_args(["--config", "old"])
    assert stop.value.code == 2 and "unknown flags iwae_k_max" in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_report_on_other_data_names_the_presets_on_the_literatures_protocol():
    from types import SimpleNamespace

    from keras_ae import evaluate

    assert presets.on_protocol("pixelcnn", "mnist") == ["pixelcnn-binarized-mnist"]
    assert presets.on_protocol("pixelcnn", "binarized_mnist") == []
    assert presets.on_protocol("pca", "mnist") == []
    assert presets.on_protocol("ae", "mnist") == ["conv-ae-vs-pca-mnist60k"]
    model = SimpleNamespace(findings=lambda metrics: [])

    def run(dataset):
        return SimpleNamespace(config={"options": {"model": "pixelrnn"}, "data": {"load": {"name": dataset}}})

    lines = evaluate.findings(model, {}, run("mnist"))
    assert lines == [f"for the published protocol, see the preset pixelrnn-diagonal-binarized-mnist "
                     f"({presets.about('pixelrnn-diagonal-binarized-mnist')['figure']}): "
                     "python train.py --config pixelrnn-diagonal-binarized-mnist"]
    assert evaluate.findings(model, {}, run("/data/binarized_mnist.npz")) == []
