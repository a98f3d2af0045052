"""Distribution strategies by name: default, mirrored, multiworker, tpu."""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def get_strategy(name="default", tpu_address=None):
    """Returns a `tf.distribute.Strategy`.

    Args:
        name: `default` (one device), `mirrored` (all local GPUs, or the local
            logical CPUs), `multiworker` (machines described by `TF_CONFIG`) or
            `tpu`.
        tpu_address: the TPU's gRPC address or name, for `tpu` only.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy multiworker needs the TF_CONFIG environment variable "
                "(cluster and task of this worker); see the README's multi-worker section."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
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
