"""keras_ae: a Keras 3 / TensorFlow zoo of autoencoders, from PCA to the conditional VAE.

``import keras_ae`` registers every model class, so ``keras.models.load_model("runs/.../model.keras")``
works right after it. A client that reads exports without Keras installed (:mod:`keras_ae.generate`)
still imports: the models are then simply not registered.
"""

__version__ = "0.3.0"

from keras_ae import console

with console.native_captured():  # TensorFlow's start-up lines go to the log, not the terminal
    try:
        import keras  # noqa: F401
    except ImportError:  # an export client without Keras: keras_ae.serving and keras_ae.generate need none
        keras = None
    if keras is not None:
        from keras_ae import models  # noqa: F401  (registers the model classes with Keras)
        from keras_ae.models import MODELS  # noqa: F401
