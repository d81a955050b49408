"""The zoo: every model by its ``--model`` name. A new model is its own module and one line here."""

from keras_ae.errors import ConfigError
from keras_ae.models.base import Autoencoder, ZooModel
from keras_ae.models.contractive import ContractiveAutoencoder
from keras_ae.models.denoising import DenoisingAutoencoder
from keras_ae.models.pca import PCA
from keras_ae.models.pixelcnn import ConditionalPixelCNN, PixelCNN
from keras_ae.models.pixelrnn import ConditionalPixelRNN, PixelRNN
from keras_ae.models.priors import FittedGaussian, Prior, StandardNormal
from keras_ae.models.sparse import SparseAutoencoder
from keras_ae.models.vae import VAE, ConditionalVAE
from keras_ae.models.vqvae import VQVAE
from keras_ae.options import flag_options

MODELS = {
    "pca": PCA,
    "ae": Autoencoder,
    "sparse": SparseAutoencoder,
    "contractive": ContractiveAutoencoder,
    "denoising": DenoisingAutoencoder,
    "vae": VAE,
    "cvae": ConditionalVAE,
    "pixelcnn": PixelCNN,
    "cpixelcnn": ConditionalPixelCNN,
    "pixelrnn": PixelRNN,
    "cpixelrnn": ConditionalPixelRNN,
    "vqvae": VQVAE,
}


SHARED_OPTIONS = flag_options(Autoencoder)  # the options most models take: train.py's "model" flag group


def is_zoo_model(obj) -> bool:
    """Whether ``obj`` is a model of the zoo (keeps the contract of :class:`keras_ae.models.base.ZooModel`)."""
    return isinstance(obj, ZooModel)


def model_class(name: str):
    """The model class registered under ``name`` (the ``--model`` flag)."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


__all__ = ["MODELS", "PCA", "VAE", "Autoencoder", "ConditionalPixelCNN", "ConditionalVAE", "ContractiveAutoencoder", "DenoisingAutoencoder",
           "FittedGaussian", "PixelCNN", "Prior", "SparseAutoencoder", "StandardNormal", "VQVAE", "PixelRNN", "ConditionalPixelRNN", "is_zoo_model", "model_class",
           "SHARED_OPTIONS"]
