import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines import segmentation
from tf_models.unet import model as unet
from tf_models.core import checkpoints, loop
from tests.model_checks import assert_config_round_trip
from tests.conftest import shared_dataset


def tiny_unet(image_shape=(32, 48, 3), **kwargs):
    return unet.build_unet(image_shape, **{"depth": 2, "base_filters": 8, **kwargs})


def masks_with_rows(rows, shape=(1, 8, 12, 1)):
    mask = np.zeros(shape, dtype="float32")
    mask[:, rows] = 1.0
    return mask


def logits_of(mask):
    return np.where(mask > 0, 10.0, -10.0).astype("float32")


@pytest.mark.parametrize(
    "image_shape, depth",
    [((32, 48, 3), 2), ((32, 48, 1), 3), ((16, 16, 3), 4), ((64, 32, 3), 1)],
)
def test_output_has_the_input_size_and_one_float32_logit_channel(image_shape, depth):
    model = unet.build_unet(image_shape, depth=depth, base_filters=4)
    images = np.random.default_rng(0).random((2,) + image_shape).astype("float32")
    logits = model(images)
    assert tuple(logits.shape) == (2,) + image_shape[:2] + (1,)
    assert logits.dtype == "float32"


def test_architecture_follows_the_paper():
    model = unet.build_unet((160, 240, 3), depth=4, base_filters=64)
    filters = [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert filters[:10] == [64, 64, 128, 128, 256, 256, 512, 512, 1024, 1024]
    upconvolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert [layer.filters for layer in upconvolutions] == [512, 256, 128, 64]
    assert all(layer.kernel_size == (2, 2) and layer.strides == (2, 2) for layer in upconvolutions)
    assert sum(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers) == 4
    assert sum(isinstance(layer, keras.layers.Concatenate) for layer in model.layers) == 4
    assert model.layers[-1].kernel_size == (1, 1) and model.layers[-1].filters == 1


@pytest.mark.parametrize("image_shape", [(31, 48, 3), (32, 47, 3), (160, 250, 3)])
def test_size_not_divisible_by_two_to_the_depth(image_shape):
    with pytest.raises(ValueError, match=r"divisible by 2\*\*4 = 16"):
        unet.build_unet(image_shape, depth=4, base_filters=4)


def test_mixed_precision_keeps_float32_logits_and_variables():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = tiny_unet()
    assert model.get_layer("down0_conv1").compute_dtype == "float16"
    assert all(variable.dtype == "float32" for variable in model.weights)
    assert model(np.zeros((1, 32, 48, 3), "float32")).dtype == "float32"


def test_model_config_round_trip_and_keras_file(tmp_path):
    model = tiny_unet(dropout=0.2, batch_norm=False)
    assert_config_round_trip(model)
    model.compile(
        keras.optimizers.Adam(1e-3), loss=unet.bce_dice_loss, metrics=[unet.DiceCoefficient(), unet.IoU()]
    )
    model.optimizer.build(model.trainable_variables)
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    images = np.random.default_rng(0).random((2, 32, 48, 3)).astype("float32")
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-5)
    assert loaded.loss is unet.bce_dice_loss or loaded.loss.__name__ == "bce_dice_loss"


@pytest.mark.parametrize(
    "custom_object",
    [
        unet.DiceLoss(smooth=2.0),
        unet.DiceCoefficient(threshold=0.3, from_logits=False, name="dice_at_0.3"),
        unet.IoU(threshold=0.7),
    ],
)
def test_custom_objects_round_trip(custom_object):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(custom_object))
    assert type(restored) is type(custom_object)
    assert restored.get_config() == custom_object.get_config()


@pytest.mark.parametrize("loss", list(unet.LOSSES.values()))
def test_loss_functions_are_serialised_by_name(loss):
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss)) is loss


def test_lovasz_hinge_at_a_binary_error_vector_is_the_jaccard_loss():
    """Where every hinge error is 0 or 1, the Lovasz extension takes the set function's value."""
    y_true = masks_with_rows(slice(0, 4))
    signs = 2.0 * y_true - 1.0
    logits = signs.copy()
    wrong = [(0, 0, 0, 0), (0, 1, 5, 0), (0, 6, 3, 0)]  # two missed foreground pixels, one false positive
    for index in wrong:
        logits[index] = 0.0
    predicted = (logits > 0).astype("float32")
    predicted[0, 6, 3, 0] = 1.0
    intersection = np.sum(predicted * y_true)
    union = np.sum(np.maximum(predicted, y_true))
    assert float(unet.lovasz_hinge_loss(y_true, logits)[0]) == pytest.approx(1.0 - intersection / union)
    assert 1.0 - intersection / union == pytest.approx(1.0 - 46 / 49)


def test_lovasz_hinge_is_zero_beyond_the_margin_and_per_image():
    top, bottom = masks_with_rows(slice(0, 4)), masks_with_rows(slice(4, 8))
    losses = unet.lovasz_hinge_loss(np.concatenate([top, top]), logits_of(np.concatenate([top, bottom])))
    assert losses.shape == (2,)
    assert float(losses[0]) == 0.0
    assert float(losses[1]) > 10.0
    assert float(np.mean(unet.bce_lovasz_loss(top, logits_of(top)))) < 0.01


def test_lovasz_hinge_lowers_when_its_gradient_is_followed():
    y_true = masks_with_rows(slice(0, 4), shape=(2, 8, 12, 1))
    logits = keras.Variable(np.random.default_rng(0).normal(size=y_true.shape).astype("float32"))
    optimizer = keras.optimizers.Adam(0.1)
    losses = []
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(unet.lovasz_hinge_loss(y_true, logits))
        optimizer.apply_gradients([(tape.gradient(loss, logits), logits)])
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0], losses
    assert np.all((np.asarray(logits) > 0) == (y_true > 0))


@pytest.mark.parametrize("metric_class", [unet.DiceCoefficient, unet.IoU])
def test_identical_disjoint_and_empty_masks(metric_class):
    top, bottom, empty = masks_with_rows(slice(0, 4)), masks_with_rows(slice(4, 8)), masks_with_rows(slice(0, 0))
    for y_true, y_pred, expected in [(top, top, 1.0), (top, bottom, 0.0), (empty, empty, 1.0), (top, empty, 0.0)]:
        metric = metric_class()
        metric.update_state(y_true, logits_of(y_pred))
        assert float(metric.result()) == pytest.approx(expected)


def test_scores_are_per_image_then_averaged():
    half = masks_with_rows(slice(0, 4))
    quarter = masks_with_rows(slice(0, 2))
    y_true = np.concatenate([half, masks_with_rows(slice(0, 8))])
    y_pred = np.concatenate([quarter, masks_with_rows(slice(0, 8))])
    dice, iou = unet.DiceCoefficient(), unet.IoU()
    dice.update_state(y_true, logits_of(y_pred))
    iou.update_state(y_true, logits_of(y_pred))
    assert float(dice.result()) == pytest.approx((2 * 2 / 6 + 1) / 2)
    assert float(iou.result()) == pytest.approx((0.5 + 1) / 2)
    dice.reset_state()
    assert float(dice.result()) == 0.0


def test_threshold_is_on_the_sigmoid():
    y_true = masks_with_rows(slice(0, 8))
    metric = unet.DiceCoefficient()
    metric.update_state(y_true, np.full(y_true.shape, -0.1, "float32"))
    assert float(metric.result()) == 0.0
    metric = unet.DiceCoefficient()
    metric.update_state(y_true, np.full(y_true.shape, 0.1, "float32"))
    assert float(metric.result()) == 1.0


def test_losses_are_small_for_right_and_large_for_wrong_logits():
    top, bottom = masks_with_rows(slice(0, 4)), masks_with_rows(slice(4, 8))
    dice_loss = unet.DiceLoss()
    assert float(dice_loss(top, logits_of(top))) < 0.01
    assert float(dice_loss(top, logits_of(bottom))) > 0.95
    assert float(np.mean(unet.bce_dice_loss(top, logits_of(top)))) < 0.01
    assert float(np.mean(unet.bce_dice_loss(top, logits_of(bottom)))) > 5.0
    assert unet.bce_dice_loss(np.concatenate([top, bottom]), logits_of(np.concatenate([top, top]))).shape == (2,)


def test_shared_training_loop_drives_the_compiled_unet(tmp_path):
    """`core.loop` (what the runner uses instead of `fit`) runs the default train and test steps."""
    data = segmentation.build_segmentation_data(
        str(shared_dataset("carvana")), image_size=(32, 48), batch_size=16, seed=0
    )
    model = tiny_unet()
    model.compile(keras.optimizers.Adam(1e-3), loss=unet.bce_dice_loss, metrics=[unet.DiceCoefficient(), unet.IoU()])
    model.optimizer.build(model.trainable_variables)
    keeper = checkpoints.CheckpointKeeper(tmp_path / "checkpoints", model=model)
    history = loop.train(
        model, data.make_dataset, epochs=1, steps_per_epoch=3, keeper=keeper,
        validation_dataset=data.validation_dataset, verbose=0,
    ).history
    assert set(history) == {"loss", "dice", "iou", "val_loss", "val_dice", "val_iou"}
    assert all(np.isfinite(values[-1]) for values in history.values())


@pytest.mark.slow
def test_fit_on_real_carvana_raises_validation_dice():
    data = segmentation.build_segmentation_data(
        str(shared_dataset("carvana")), image_size=(32, 48), batch_size=16, validation_fraction=0.2, seed=0
    )
    model = tiny_unet(batch_norm=False)  # 20 steps are too few for batch-norm moving statistics
    model.compile(
        keras.optimizers.Adam(3e-3), loss=unet.bce_dice_loss, metrics=[unet.DiceCoefficient(), unet.IoU()]
    )
    before = model.evaluate(data.validation_dataset, verbose=0, return_dict=True)
    model.fit(data.make_dataset(0), steps_per_epoch=10, epochs=2, verbose=0)
    after = model.evaluate(data.validation_dataset, verbose=0, return_dict=True)
    assert after["dice"] > before["dice"] + 0.1, (before, after)
    assert after["dice"] > 0.5 and after["loss"] < before["loss"], (before, after)
