"""keras_ae: a Keras 3 / TensorFlow zoo of autoencoders, from PCA to the conditional VAE."""

__version__ = "0.2.0"
