"""The model contract: priors, options declared once, your own networks, a new model in one file, one owner.

Each test here fails if a caller starts guessing a model's type again, if a model family needs edits
outside its own file and the registry, or if keras_ae's modules import each other in a cycle.
"""

import ast
import inspect
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from conftest import REPO
from keras_ae import data, export, generate, options, serving, train
from keras_ae.errors import ConfigError
from keras_ae.models import MODELS, VAE, VQVAE, Autoencoder, ConditionalVAE, FittedGaussian, PixelCNN, StandardNormal
from keras_ae.options import Option, finite_float, random_seed
from keras_ae.runs import load_run

PACKAGE = REPO / "keras_ae"
rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


# ---------------------------------------------------------------- the prior is part of the model


def test_a_plain_autoencoder_fits_the_gaussian_of_its_training_codes(digits, tmp_path):
    model = Autoencoder(digits.image_shape, latent_dim=3, widths=(32,))
    model.compile(optimizer="adam")
    assert isinstance(model.prior, FittedGaussian) and not model.prior.fitted
    with pytest.raises(ConfigError, match="prior has not been fitted"):
        model.sample(2)
    model.fit(digits.pipeline("train", 64, seed=0), epochs=1, verbose=0)
    assert not model.prior.fitted  # Keras's fit trains the networks; the prior is fitted when training ends
    model.fit_prior(digits.pipeline("train", 64, seed=0))
    codes = model.codes(digits.arrays("train")[0]).astype(np.float64)
    description = model.prior.describe()
    np.testing.assert_allclose(description["mean"], codes.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(description["covariance"], np.cov(codes, rowvar=False), atol=1e-5)
    assert description["fitted_on"] == f"codes of the {len(codes)} images of the training split"

    model.save(tmp_path / "ae.keras")  # the fitted prior travels with the model: nothing refits it
    loaded = keras.models.load_model(tmp_path / "ae.keras")
    assert loaded.prior.describe() == description
    np.testing.assert_array_equal(loaded.prior.sample(5, seed=3), serving.sample_codes(description, 5, seed=3))
    np.testing.assert_array_equal(loaded.sample(5, seed=3), model.sample(5, seed=3))


def test_the_streaming_fit_matches_the_fit_on_all_codes_at_once():
    prior = FittedGaussian(4)
    codes = rng.normal(size=(1000, 4)) * [1.0, 5.0, 0.1, 2.0] + [3.0, -1.0, 0.0, 100.0]
    for start in range(0, 1000, 77):  # uneven batches
        prior.update(codes[start:start + 77])
    np.testing.assert_allclose(prior.covariance(), np.cov(codes, rowvar=False), rtol=1e-10)
    np.testing.assert_allclose(prior.describe()["mean"], codes.mean(axis=0), rtol=1e-12)


def test_a_vae_samples_its_standard_normal_prior_the_way_its_export_client_does():
    model = VAE((8, 8, 1), latent_dim=3)
    assert isinstance(model.prior, StandardNormal)
    z = model.prior.sample(10000, seed=1)
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    np.testing.assert_array_equal(z, serving.sample_codes(model.prior.describe(), 10000, seed=1))
    np.testing.assert_allclose(np.asarray(model.prior.log_prob(np.zeros((1, 3), "float32"))),
                               [-1.5 * np.log(2 * np.pi)], rtol=1e-6)


def model_classes_imported(source: str) -> list[str]:
    """The classes of keras_ae.models that ``source`` imports (``from keras_ae.models.x import Y``, or
    ``from keras_ae import models`` then ``models.Y``): what a caller would need to ask which model it holds."""
    import importlib

    found, aliases = [], set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("keras_ae.models"):
            module = importlib.import_module(node.module)
            found += [alias.name for alias in node.names if inspect.isclass(getattr(module, alias.name, None))]
        if isinstance(node, ast.ImportFrom) and node.module == "keras_ae":
            aliases |= {alias.asname or alias.name for alias in node.names if alias.name == "models"}
    import keras_ae.models as models

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if inspect.isclass(getattr(models, node.attr, None)):
                found.append(node.attr)
    return found


def test_no_module_outside_models_imports_a_model_class():
    """Training, evaluation, figures, export and generation use the declared contract (model.code,
    model.density, model.prior, ...), never a model class: no isinstance, no subclass checks."""
    found = {str(path.relative_to(REPO)): names for path in [*PACKAGE.rglob("*.py"), REPO / "train.py"]
             if path.parent.name != "models" and (names := model_classes_imported(path.read_text()))}
    assert not found
    # and the rule sees a caller that does ask
    assert model_classes_imported("from keras_ae.models.pixelcnn import PixelCNN\n") == ["PixelCNN"]
    assert model_classes_imported("from keras_ae import models\nmodels.VQVAE\n") == ["VQVAE"]
    assert model_classes_imported("from keras_ae.models import MODELS, is_zoo_model\n") == []


# ---------------------------------------------------------------- options: declared once, true defaults


@pytest.mark.parametrize("name", MODELS)
def test_every_declared_option_round_trips_through_the_flags_and_get_config(name):
    """Each option's default given as its flag builds the model that the Python defaults build (the same types,
    so the same config.json); the config holds every option and rebuilds the model."""
    cls = MODELS[name]
    defaults, flags = options.constructor_defaults(cls), ["--model", name]
    for option_name, option in options.flag_options(cls).items():
        flag, default = option.flag_of(option_name), defaults[option_name]
        if option.flag:
            flags += [flag] if default else []
        elif default is not None:
            flags += [flag, ",".join(map(str, default)) if isinstance(default, tuple) else str(default)]
    args = train.build_parser().parse_args(flags)
    given = {n: getattr(args, n) for n in options.flag_options(cls) if getattr(args, n) is not None}
    data = {"input_shape": (16, 16, 1), "num_classes": 3 if cls.needs_labels else None, "name": "m"}
    config = cls(**data).get_config()
    assert json.dumps(cls(**data, **given).get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    assert set(config) == set(options.declared_options(cls)) | set(data)
    assert cls(**config).get_config() == config


def test_help_shows_the_constructors_real_defaults():
    text = train.build_parser().format_help()
    flat = " ".join(text.split())
    assert "(default: None)" not in flat
    assert "(default: 0.01 for sparse; 0.1 for contractive)" in flat
    assert "(default: mse for pca, ae, sparse, contractive, denoising; bce for vae, cvae, vqvae)" in flat
    assert "--prior {pixelcnn}" in flat  # (the VQ-VAE's prior_kind: its attribute prior is the prior itself)
    assert "(default: 1.0 for vae; 3.0 for cvae)" in flat  # a subclass's option_defaults
    assert "(default: 512,256 for mlp, 32,64 for conv)" in flat
    # and a flag exists for every declared option of every model, once (seed is --seed's)
    flags = [a.option_strings[0] for a in train.build_parser()._actions if a.option_strings]
    assert len(flags) == len(set(flags))
    every = {n: option for cls in MODELS.values() for n, option in options.flag_options(cls).items()}
    assert {option.flag_of(n) for n, option in every.items()} <= set(flags)


def test_the_docstring_lists_every_option_with_its_default():
    for cls in MODELS.values():
        block = " ".join(inspect.getdoc(cls).partition("Options:")[2].split())
        for name, option in options.declared_options(cls).items():
            assert f"{name}: {option.help}" in block, (cls.__name__, name)
    doc = " ".join(inspect.getdoc(ConditionalVAE).split())
    assert "beta: weight of the KL term (>= 0): 1 is the ELBO, > 1 a beta-VAE (default: 3.0)." in doc
    doc = inspect.getdoc(Autoencoder)  # the block comes after the arguments, before the example
    assert doc.index("Args:") < doc.index("Options:") < doc.index("Example:")


def test_an_unknown_option_is_refused_in_one_line_that_lists_the_options():
    with pytest.raises(ConfigError) as error:
        VAE((8, 8, 1), betta=2.0)
    message = str(error.value)
    assert message.startswith("VAE takes no option 'betta'; its options are: latent_dim, arch,") and "\n" not in message
    assert "beta" in message.split(": ", 1)[1]
    with pytest.raises(ConfigError, match="PixelCNN takes no option 'latent_dim'"):
        PixelCNN((8, 8, 1), latent_dim=3)
    with pytest.raises(ConfigError, match="VQVAE takes no option 'arch'"):  # an option it drops
        VQVAE((16, 16, 1), arch="mlp")
    model = VAE((8, 8, 1), latent_dim=2, widths=(4,), name="mine", dtype="float32", trainable=False)  # Keras's own
    assert (model.name, model.trainable) == ("mine", False)


def test_python_values_are_kept_as_the_flags_give_them():
    model = VAE((8, 8, 1), latent_dim=2.0, widths=[4], beta=2, binarize=1, seed="3")
    assert (model.latent_dim, model.widths, model.beta, model.binarize, model.seed) == (2, (4,), 2.0, True, 3)
    assert [type(model.get_config()[n]) for n in ("latent_dim", "widths", "beta")] == [int, tuple, float]
    with pytest.raises(ConfigError, match="widths must be a sequence of integers such as \\(32, 64\\), got '4'"):
        VAE((8, 8, 1), widths="4")


def test_every_option_is_set_before_anything_is_built():
    """A subclass's options are set when its bases build (no field to set before ``super().__init__``)."""
    seen = {}

    class Watched(VAE):
        options = {"extra": Option("an option of the subclass", finite_float, default=0.5)}

        def build_networks(self):  # called from Autoencoder.build_model, before Watched's own code would run
            seen.update({name: getattr(self, name, "unset") for name in options.declared_options(Watched)})
            return super().build_networks()

    model = Watched((8, 8, 1), latent_dim=2, widths=(4,), extra=2.0, mixture_prior=3)
    assert "unset" not in seen.values() and (seen["extra"], seen["mixture_prior"], seen["beta"]) == (2.0, 3, 1.0)
    assert model.prior.components == 3  # build_prior read the VAE's option


# ---------------------------------------------------------------- your own networks


def my_networks(conditional: bool = False, heads=("z_mean", "z_log_var"), latent: int = 3):
    """A small functional encoder/decoder pair of the user's own design (not keras_ae's builders)."""
    images = keras.Input((8, 8, 1), name="images")
    inputs = [images]
    x = layers.Conv2D(6, 3, strides=2, padding="same", activation="elu")(images)
    x = layers.GlobalAveragePooling2D()(x)
    if conditional:
        label = keras.Input((10,), name="label")
        inputs.append(label)
        x = layers.Concatenate()([x, label])
    x = layers.Dense(24, activation="elu")(x)
    encoder = keras.Model(inputs if conditional else images, {h: layers.Dense(latent, name=h)(x) for h in heads},
                          name="my_encoder")
    z = keras.Input((latent,), name="z")
    y = z
    if conditional:
        label = keras.Input((10,), name="label")
        y = layers.Concatenate()([z, label])
    y = layers.Dense(4 * 4 * 6, activation="elu")(y)
    y = layers.Reshape((4, 4, 6))(y)
    y = layers.Conv2DTranspose(1, 3, strides=2, padding="same")(y)
    decoder = keras.Model([z, label] if conditional else z, y, name="my_decoder")
    return encoder, decoder


def test_networks_that_break_the_contract_are_refused_with_what_is_wrong():
    encoder, decoder = my_networks(heads=("z",))
    with pytest.raises(ConfigError, match="encoder must return a dict with 'z_mean', 'z_log_var'"):
        VAE(encoder=encoder, decoder=decoder)
    encoder, _ = my_networks(latent=5)
    with pytest.raises(ConfigError, match="has shape \\(5,\\) per image; the decoder takes codes of size 3"):
        VAE(encoder=encoder, decoder=decoder)
    small = keras.Sequential([keras.Input((3,)), layers.Dense(16), layers.Reshape((4, 4, 1))])
    with pytest.raises(ConfigError, match=r"returns \(4, 4, 1\) per code; .* \(8, 8, 1\)"):
        VAE(encoder=my_networks()[0], decoder=small)


def test_conditional_networks_of_your_own_take_the_one_hot_label(digits):
    encoder, decoder = my_networks(conditional=True)
    model = ConditionalVAE(encoder=encoder, decoder=decoder, num_classes=10)
    x, y = digits.arrays("test")
    terms = model.compute_losses(x[:8], y[:8])
    assert np.isfinite(float(terms["loss"]))
    z = np.zeros((1, 3), "float32")
    assert not np.allclose(model.decode(z, np.array([0])), model.decode(z, np.array([7])))
    with pytest.raises(ConfigError, match=r"my_encoder does not take images of shape \(8, 8, 1\) with one-hot"):
        ConditionalVAE(encoder=encoder, decoder=decoder, num_classes=5)  # its label input has 10 classes


@pytest.fixture(scope="module")
def own_run(digits, tmp_path_factory):
    """A VAE on networks of the user's own, trained by the library into a run folder."""
    keras.utils.set_random_seed(0)
    encoder, decoder = my_networks()
    model = VAE(encoder=encoder, decoder=decoder, binarize=True)
    run_dir = train.train(model, digits, tmp_path_factory.mktemp("own") / "run", epochs=2, batch_size=64)
    return model, run_dir


@pytest.mark.slow
def test_your_own_networks_train_and_the_run_records_what_they_are(own_run):
    model, run_dir = own_run
    assert model.architecture == "custom" and model.latent_dim == 3 and model.image_shape == (8, 8, 1)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["architecture"] == "custom" and config["model_class"] == "VAE"
    model_config = config["model_config"]
    assert "arch" not in model_config and "widths" not in model_config  # no claim of a built network
    assert model_config["encoder"]["config"]["name"] == "my_encoder"
    assert model_config["decoder"]["config"]["name"] == "my_decoder"
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3 and float(history[-1].split(",")[history[0].split(",").index("loss")]) < 60


@pytest.mark.slow
def test_a_fresh_process_loads_a_run_right_after_import_keras_ae(own_run):
    _, run_dir = own_run
    script = ("import sys, keras, keras_ae; m = keras.models.load_model(sys.argv[1]); "
              "print(type(m).__name__, m.architecture, m.encoder.name)")
    result = subprocess.run([sys.executable, "-c", script, str(run_dir / "model.keras")], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["VAE", "custom", "my_encoder"]


@pytest.mark.slow
def test_your_own_networks_evaluate_and_export_like_built_in_ones(own_run, tmp_path):
    model, run_dir = own_run
    result = subprocess.run([sys.executable, "-m", "keras_ae.evaluate", str(run_dir), "--iwae-samples", "10",
                             "--no-figures"], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert report["architecture"] == "custom" and report["metrics"]["likelihood"]["nll"] > 0

    version_dir = export.export_run(run_dir, tmp_path / "export", quantize=False)
    assert version_dir == tmp_path / "export" / "run" / "1"
    z = model.prior.sample(16, seed=2)
    expected = np.asarray(model.decode(z))
    for backend in serving.BACKENDS:
        images = generate.load_decoder(version_dir.parent, backend)(z)
        np.testing.assert_allclose(images, expected, atol=1e-5)


def test_keras_own_export_works_on_zoo_models(tmp_path):
    x = rng.random((4, 8, 8, 1)).astype("float32")
    labels = np.array([0, 1, 2, 1], "int32")
    for model, inputs in [(Autoencoder((8, 8, 1), latent_dim=2, arch="conv", widths=(4,)), (x,)),
                          (ConditionalVAE((8, 8, 1), num_classes=3, latent_dim=2), ((x, labels),))]:
        model.export(str(tmp_path / model.name), verbose=False)
        loaded = tf.saved_model.load(str(tmp_path / model.name))  # keeps the served function's variables alive
        np.testing.assert_allclose(np.asarray(loaded.serve(*inputs)), np.asarray(model(*inputs)), atol=1e-6)


# ---------------------------------------------------------------- a new model family: one file + one registry line


@keras.saving.register_keras_serializable(package="keras_ae_tests")
class NoisyCodeAutoencoder(Autoencoder):
    """A model family written in one file: Gaussian noise of ``code_noise`` added to the code while training."""

    options = {"code_noise": Option("std of the noise added to the code while training", finite_float, default=0.5),
               "seed": Option("seed of the noise", random_seed, default=0)}

    def build_model(self):
        super().build_model()
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def compute_losses(self, x, y=None, training=False):
        z = self.encode(x, y, training=training)
        if training:
            z = z + self.code_noise * keras.random.normal(ops.shape(z), seed=self.seed_generator)
        reconstruction = ops.mean(self.reconstruction_error(x, self.decode_logits(z, y, training=training)))
        return {"loss": reconstruction, "reconstruction": reconstruction}


@pytest.mark.slow
def test_a_new_model_in_its_own_file_trains_evaluates_exports_and_generates(monkeypatch, tmp_path):
    monkeypatch.setitem(MODELS, "noisy", NoisyCodeAutoencoder)  # the one registry line
    parser = train.build_parser()
    assert "--code-noise" in parser.format_help() and "[noisy]" in " ".join(parser.format_help().split())
    args = parser.parse_args(["--model", "noisy", "--code-noise", "0.2", "--latent-dim", "4", "--widths", "32",
                              "--dataset", "digits", "--epochs", "2", "--run-dir", str(tmp_path / "run"),
                              "--export-root", str(tmp_path / "export"), "--verbose", "0"])
    run_dir = train.run(args)
    report = json.loads((run_dir / "report.json").read_text())
    assert report["model"] == "NoisyCodeAutoencoder" and report["metrics"]["reconstruction"]["squared_error"] > 0
    model = load_run(run_dir, with_data=False).model
    assert model.code_noise == 0.2 and model.prior.fitted
    metadata = serving.read_metadata(tmp_path / "export" / "run")
    assert metadata["model"] == "noisy" and metadata["sampling"]["prior"] == "empirical_gaussian"
    images = generate.load_decoder(tmp_path / "export" / "run", "tflite")(serving.sample_codes(metadata["sampling"], 4))
    assert images.shape == (4, 8, 8, 1)
    with pytest.raises(ConfigError, match="--code-noise does not apply to --model ae"):
        train.model_kwargs("ae", MODELS["ae"], parser.parse_args(["--code-noise", "1"]), data.load("digits"))


# ---------------------------------------------------------------- one owner: no import cycles


def import_graph() -> dict[str, set[str]]:
    """keras_ae module -> the keras_ae modules it imports, at the top or inside functions."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base
                                                                                                      else []))
                edges |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                          for alias in node.names}
        graph[name] = {edge for edge in edges if edge in modules and edge != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state:
                found = visit(child)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_keras_ae_has_no_import_cycle():
    graph = import_graph()
    assert {"keras_ae.evaluate", "keras_ae.figures", "keras_ae.serving", "keras_ae.data.resolve"} <= set(graph)
    assert "keras_ae.figures" in graph["keras_ae.evaluate"]  # the graph sees function-level and top imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_serving_format_has_one_owner_that_both_sides_import():
    graph = import_graph()
    assert "keras_ae.serving" in graph["keras_ae.export"] and "keras_ae.serving" in graph["keras_ae.generate"]
    assert "keras_ae.generate" not in graph["keras_ae.export"]  # the producer does not import its client
    assert not {m for m in graph["keras_ae.serving"] if m.startswith(("keras_ae.models", "keras_ae.export"))}
