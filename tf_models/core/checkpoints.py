"""`tf.train.Checkpoint` + `CheckpointManager`: resume, periodic saves, fallback.

A checkpoint holds everything a run needs to continue exactly where it stopped:
the model (and so its sub-networks and random seed state), every optimizer,
its random seed states, the global step, the epoch and the position inside
the epoch, plus any extra
trackables a task adds (the DCGAN's fixed sample noise, for instance).
"""

import logging
import pathlib
import tempfile

import tensorflow as tf

from tf_models.core import faults

logger = logging.getLogger(__name__)


class TrainingState(tf.Module):
    """Counters saved with every checkpoint."""

    def __init__(self):
        super().__init__(name="training_state")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="step_in_epoch"
        )

    def as_dict(self):
        return {
            "step": int(self.step.numpy()),
            "epoch": int(self.epoch.numpy()),
            "step_in_epoch": int(self.step_in_epoch.numpy()),
        }


def random_state_variables(model):
    """The model's random seed states (noise, dropout): variables that are not weights.

    `tf.train.Checkpoint` does not reach them through the model, and without
    them a resumed run would draw different noise than an uninterrupted one.
    """
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


class OptionalItem:
    """A checkpoint item restored only when the checkpoint holds it.

    For state a task started saving after some of its runs were checkpointed
    (callback counters, say): those runs still resume, with the item as it
    was built, instead of their checkpoints being refused as not matching.
    """

    def __init__(self, trackable):
        self.trackable = trackable


class CheckpointKeeper:
    """Saves and restores a run's checkpoints.

    Args:
        directory: where the checkpoints go (`saved_models/<task>/<run>/checkpoints`).
        max_to_keep: how many recent checkpoints to keep.
        write: False on non-chief workers: they restore from `directory`, like
            the chief, so that every worker resumes at the same step, but
            their saves (which every worker must make under
            `MultiWorkerMirroredStrategy`) go to a scratch folder.
        model: the Keras model; its weights, optimizers and seed states are saved.
        **trackables: what else to save (variables, other trackables); an
            `OptionalItem(trackable)` is saved too, and restored when present.
    """

    def __init__(self, directory, model, max_to_keep=3, write=True, **trackables):
        self.directory = pathlib.Path(directory if write else tempfile.mkdtemp(prefix="worker_ckpt_"))
        self.state = TrainingState()
        required = {name: item for name, item in trackables.items() if not isinstance(item, OptionalItem)}
        optional = {name: item.trackable for name, item in trackables.items() if isinstance(item, OptionalItem)}
        required.update(state=self.state, model=model, random_states=random_state_variables(model))
        self.checkpoint = tf.train.Checkpoint(**required, **optional)
        self.required_checkpoint = tf.train.Checkpoint(**required) if optional else self.checkpoint
        self.optional_checkpoint = tf.train.Checkpoint(**optional) if optional else None
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(self.directory), max_to_keep=max_to_keep
        )
        self.restore_manager = self.manager if write else tf.train.CheckpointManager(
            self.checkpoint, str(directory), max_to_keep=max_to_keep
        )

    @property
    def latest(self):
        return self.manager.latest_checkpoint

    def restore(self):
        """Restores the newest readable checkpoint; returns its path or None.

        A checkpoint that cannot be read (cut short by a crash, corrupted on
        disk) is skipped with a warning, and the one before it is tried. When
        checkpoints exist but none can be read, the run is not silently
        restarted: a `RuntimeError` says so.
        """
        candidates = list(reversed(self.restore_manager.checkpoints))
        for path in candidates:
            try:
                status = self.required_checkpoint.restore(path)
                status.assert_existing_objects_matched()
                if self.optional_checkpoint is not None:
                    status.expect_partial()
                    self.optional_checkpoint.restore(path).expect_partial()
            except Exception as error:  # corrupt files raise OpError, IndexError, ValueError...
                logger.warning("Checkpoint %s is unreadable (%s); trying the previous one.", path, error)
                continue
            return path
        if candidates:
            raise RuntimeError(
                f"None of the checkpoints in {self.directory} can be read ({', '.join(candidates)}). "
                "Start the run again with --fresh, or under another --run-name."
            )
        return None

    def save(self):
        with faults.region("checkpoint_save"):
            return self.manager.save(checkpoint_number=int(self.state.step.numpy()))
