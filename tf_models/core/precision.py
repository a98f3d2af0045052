"""Mixed precision in one place.

`set_policy` picks the global Keras dtype policy before models are built.
Custom `train_step`s call `scale_loss` and `apply_gradients` from here, so that
float16 loss scaling and per-replica loss scaling are written once.
"""

import contextlib

import keras
import tensorflow as tf

POLICIES = ("float32", "mixed_float16", "mixed_bfloat16")
# x86 CPU flags (as /proc/cpuinfo spells them) of bfloat16 instructions that oneDNN's bfloat16 kernels use.
BFLOAT16_CPU_FEATURES = ("avx512_bf16", "amx_bf16")


def set_policy(name="float32"):
    if name not in POLICIES:
        raise ValueError(f"Unknown precision {name!r}; choose one of {', '.join(POLICIES)}.")
    keras.mixed_precision.set_global_policy(name)
    return keras.mixed_precision.global_policy()


def emulation_warning(name, cpu_features, accelerators=()):
    """Why `name` would train slowly on this machine, or None.

    `mixed_bfloat16` on an x86 CPU without bfloat16 instructions (and no GPU or
    TPU) runs emulated bfloat16 kernels, many times slower than float32.
    """
    if name != "mixed_bfloat16" or accelerators or "avx" not in cpu_features:
        return None
    if set(BFLOAT16_CPU_FEATURES) & set(cpu_features):
        return None
    return ("--precision mixed_bfloat16 on a CPU without AVX-512 BF16 or AMX: TensorFlow emulates bfloat16 there, "
            "many times slower than float32; prefer --precision float32 (docs/benchmarks.md).")


@contextlib.contextmanager
def policy_scope(name):
    """The global policy is `name` inside the block and what it was before after it."""
    previous = keras.mixed_precision.global_policy()
    set_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def wrap_optimizer(optimizer):
    """Wraps an optimizer in a `LossScaleOptimizer` under mixed_float16."""
    policy = keras.mixed_precision.global_policy()
    if policy.name == "mixed_float16" and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def replica_mean(per_example_loss):
    """Mean over the global batch: the local mean divided by the replica count.

    Summing these across replicas (what the optimizers do with gradients) gives
    the mean over the global batch, whatever the number of replicas.
    """
    per_example_loss = tf.cast(per_example_loss, tf.float32)
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return tf.reduce_mean(per_example_loss) / replicas


def scale_loss(loss, optimizer):
    """Multiplies the loss by the loss scale when the optimizer has one."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def minimize(tape, loss, variables, optimizer):
    """Gradient step on `variables` from a loss recorded on `tape`.

    The loss is scaled on the tape (re-entered for that), and
    `LossScaleOptimizer.apply_gradients` unscales the gradients and skips the
    step when they are not finite. Returns the optimizer's step counter, for
    a control dependency: replicas must launch their gradient all-reduces in
    the same order, so a second update in the same step waits for the first.
    """
    with tape:
        scaled_loss = scale_loss(loss, optimizer)
    gradients = tape.gradient(scaled_loss, variables)
    return optimizer.apply_gradients(list(zip(gradients, variables)))
