"""Sources (TFDS names, local folders in their public layouts) to `tf.data.Dataset`s."""

import tf_models  # noqa: F401  (TensorFlow's CPU kernels are chosen when it loads: tf_models sets them first)
