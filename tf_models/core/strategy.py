"""Distribution strategies by name: default, mirrored, multiworker, tpu."""

import functools
import json
import os

import keras
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def _local_devices():
    """The local GPUs, or without any the logical CPUs (MirroredStrategy alone takes one CPU)."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return [device.name for device in devices]


def get_strategy(name="default", tpu_address=None):
    """Returns a `tf.distribute.Strategy`, the same object for the same arguments in one process.

    One process may train several runs (experiment lists, tests, the app).
    Each new `MirroredStrategy` numbers its collective all-reduces from the
    same keys, and TensorFlow keeps the shapes it saw under a key for the
    process's lifetime, so a second strategy training another model fails
    with "Shape mismatch in the collective instance". Reusing one strategy
    keeps the keys unique (it is also what `MultiWorkerMirroredStrategy` and
    TPU initialisation need: both may be set up only once per process).

    Args:
        name: `default` (one device), `mirrored` (all local GPUs, or the local
            logical CPUs), `multiworker` (machines described by `TF_CONFIG`) or
            `tpu`.
        tpu_address: the TPU's gRPC address or name, for `tpu` only.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    return _create_strategy(name, tpu_address or "")


@functools.cache
def _create_strategy(name, tpu_address):
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(_local_devices())
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy multiworker needs the TF_CONFIG environment variable "
                "(cluster and task of this worker); see docs/distributed.md."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")


def is_chief(strategy=None):
    """True on the worker that writes checkpoints, summaries and exports."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type in (None, "chief"):
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def num_replicas():
    """Replicas taking part in a step: 1 outside `tf.distribute`."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_rows(tensor, local_batch_size):
    """This replica's `local_batch_size` rows of a tensor drawn for the global batch.

    Every replica draws the same global tensor (its random state is shared)
    and keeps its own slice, in the order `experimental_distribute_dataset`
    splits a global batch. So replicas get different noise, and N replicas
    together use exactly the noise one replica would draw for the global batch.
    """
    context = tf.distribute.get_replica_context()
    replica_id = 0 if context is None else context.replica_id_in_sync_group
    start = tf.cast(replica_id, tf.int32) * tf.cast(local_batch_size, tf.int32)
    return tensor[start : start + local_batch_size]


def batch_normalization(**kwargs):
    """`keras.layers.BatchNormalization` with statistics over the global batch.

    `synchronized=True` all-reduces the batch sum, sum of squares and count
    across replicas, so N replicas normalise (and update the moving
    statistics) as one replica would on the global batch. Its cost is three
    small all-reduces per layer and forward pass in training; inference uses
    the moving statistics and costs nothing extra; with one replica the
    all-reduces are identities.
    """
    return keras.layers.BatchNormalization(synchronized=True, **kwargs)


@keras.saving.register_keras_serializable(package="tf_models")
class ReplicaDropout(keras.layers.Dropout):
    """`keras.layers.Dropout` whose mask is one draw for the global batch.

    Keras' `Dropout` draws its mask from a seed state the replicas share, so
    under N replicas every replica would drop the same units of its own rows,
    a mask one replica never draws. Here, as for the GAN noise, every replica
    draws the mask of the global batch and keeps its rows (`replica_rows`),
    so N replicas drop exactly the units one replica drops on the whole batch.
    Inference (`training=False`) is the identity, as in `Dropout`; with a
    `noise_shape` it is `Dropout` itself.
    """

    def call(self, inputs, training=False):
        if not training or self.rate <= 0:
            return inputs
        if self.noise_shape is not None:
            return super().call(inputs, training=training)
        local_batch_size = tf.shape(inputs)[0]
        global_shape = tf.concat([[local_batch_size * num_replicas()], tf.shape(inputs)[1:]], axis=0)
        uniform = keras.random.uniform(global_shape, seed=self.seed_generator)
        keep = replica_rows(uniform, local_batch_size) >= self.rate
        return tf.where(keep, inputs / tf.cast(1.0 - self.rate, inputs.dtype), tf.zeros_like(inputs))


def dropout(rate, **kwargs):
    """Dropout with the same mask for the global batch whatever the replica count (`ReplicaDropout`)."""
    return ReplicaDropout(rate, **kwargs)
