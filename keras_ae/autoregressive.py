"""The one sampler of every autoregressive density: the PixelCNN over images, a PixelCNN prior over a code grid.

A density (:class:`keras_ae.contract.Density`) gives, in one network pass, the distribution of
every element given the elements before it (``logits_fn(values)``: (N, H, W, C) logits of p(1) for
binary elements, (N, H, W, C, levels) otherwise). Sampling fills the elements one at a time in
raster order with :func:`step`, which draws an element from its distribution and one uniform number
per element:

- binary: ``1 if u < p(1) else 0``;
- ``levels`` values: the inverse CDF, the first level whose cumulative probability exceeds ``u``.

The uniforms are an input, drawn by :func:`keras_ae.serving.uniforms` from the seed, so the
sampler has no random state of its own: the Keras model (:func:`complete`), the SavedModel's
``sample`` and ``complete`` signatures (:func:`fill` in one graph) and a device running the TFLite
step file once per element (the client in :mod:`keras_ae.generate`) draw the same values for the
same seed.
"""

from __future__ import annotations

import tensorflow as tf

from keras_ae.contract import Density


def draw(logits, u, levels: int):
    """Values in [0, 1] drawn from ``logits`` ((N,) logits of p(1), or (N, levels)) with uniforms ``u`` (N,)."""
    if levels == 2:
        level = tf.cast(u < tf.sigmoid(logits), tf.float32)
    else:
        below = tf.cast(tf.cumsum(tf.nn.softmax(logits, axis=-1), axis=-1) <= u[:, None], tf.float32)
        level = tf.minimum(tf.reduce_sum(below, axis=-1), float(levels - 1))
    return level / float(levels - 1)


def step(logits_fn, density: Density, values, uniforms, position):
    """``values`` with the element at raster index ``position`` drawn given the elements before it."""
    count, positions = tf.shape(values)[0], density.positions
    logits = tf.cast(logits_fn(values), tf.float32)
    logits = tf.reshape(logits, [count, positions] + ([] if density.binary else [density.levels]))
    value = draw(tf.gather(logits, position, axis=1), tf.gather(tf.reshape(uniforms, [count, positions]), position,
                                                                 axis=1), density.levels)
    here = tf.one_hot(position, positions)
    flat = tf.reshape(values, [count, positions]) * (1.0 - here) + value[:, None] * here
    return tf.reshape(flat, [count, *density.shape])


def fill(logits_fn, density: Density, values, uniforms, start):
    """``values`` with every element from raster index ``start`` on drawn in order, in one graph."""
    def body(position, values):
        return position + 1, step(logits_fn, density, values, uniforms, position)

    _, values = tf.while_loop(lambda position, _: position < density.positions, body,
                              [tf.cast(start, tf.int32), tf.convert_to_tensor(values, tf.float32)])
    return values
