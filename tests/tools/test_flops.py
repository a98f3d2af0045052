import keras
import pytest

from tf_models.dcgan import model as dcgan_model
from tf_models.tools import flops


def single_layer_model(layer, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


def test_conv2d_flops_equal_the_hand_count():
    model = single_layer_model(keras.layers.Conv2D(4, 3, padding="same"), (8, 8, 3))
    # 8 x 8 x 4 outputs, each 3 x 3 x 3 multiply-adds, plus one bias add each.
    assert flops.count_flops(model).total == 2 * (8 * 8 * 4) * (3 * 3 * 3) + 8 * 8 * 4


def test_strided_conv2d_without_bias_counts_its_smaller_output():
    model = single_layer_model(keras.layers.Conv2D(6, 5, strides=2, use_bias=False), (15, 15, 2))
    assert flops.count_flops(model).total == 2 * (6 * 6 * 6) * (5 * 5 * 2)


def test_dense_flops_equal_the_hand_count():
    model = single_layer_model(keras.layers.Dense(5), (7,))
    assert flops.count_flops(model).total == 2 * 7 * 5 + 5
    batched = flops.count_flops(model, [(3, 7)]).total
    assert batched == 3 * (2 * 7 * 5 + 5)


def test_transposed_and_depthwise_convolutions():
    transposed = single_layer_model(keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False),
                                    (5, 5, 3))
    assert flops.count_flops(transposed).total == 2 * (5 * 5 * 3) * (4 * 4 * 2)
    depthwise = single_layer_model(keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False), (6, 6, 4))
    assert flops.count_flops(depthwise).total == 2 * (6 * 6 * 4) * (3 * 3)


def test_nested_models_and_elementwise_layers_are_counted_once_each():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.ReLU()])
    inputs = keras.Input((4,))
    outer = keras.Model(inputs, keras.layers.BatchNormalization()(inner(inputs)))
    count = flops.count_flops(outer)
    assert count.total == (2 * 4 * 3 + 3) + 3 + 2 * 3
    assert [row[1] for row in count.layers] == ["Dense", "ReLU", "BatchNormalization"]
    assert count.uncounted == []


def test_unknown_sizes_need_a_fill_and_subclassed_models_are_refused():
    inputs = keras.Input((None, None, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(1, 1, use_bias=False)(inputs))
    with pytest.raises(ValueError, match="fill"):
        flops.count_flops(model)
    assert flops.forward_flops_per_example(model, fill=(4, 5)) == 2 * 4 * 5
    with pytest.raises(ValueError, match="subclassed"):
        flops.count_flops(dcgan_model.DCGAN(latent_dim=8, generator_filters=4, discriminator_filters=4))


def test_training_flops_follow_the_declared_passes():
    plain = single_layer_model(keras.layers.Dense(5), (7,))
    assert flops.training_flops_per_example(plain) == 3 * (2 * 7 * 5 + 5)
    gan = dcgan_model.DCGAN(latent_dim=8, generator_filters=4, discriminator_filters=4)
    generator = flops.forward_flops_per_example(gan.generator)
    discriminator = flops.forward_flops_per_example(gan.discriminator)
    assert generator > 0 and discriminator > 0
    assert flops.training_flops_per_example(gan) == 3 * generator + 9 * discriminator
