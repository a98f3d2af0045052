"""Network bodies that more than one task builds on.

`unet_features` is the contracting and expanding path of Ronneberger et al.
(2015) with "same" padding: the U-Net segmenter ends it with a 1x1 logit
convolution, the Pix2Pix enhancer (`generator="unet"`) with a 1x1
convolution that predicts a correction of its input.
"""

import keras

from tf_models.core import strategy


def double_convolution(x, filters, batch_norm, name):
    """Two 3x3 convolutions (He-normal), each followed by batch norm when asked for and ReLU."""
    for index in (1, 2):
        x = keras.layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm, kernel_initializer="he_normal",
            name=f"{name}_conv{index}",
        )(x)
        if batch_norm:
            x = strategy.batch_normalization(name=f"{name}_bn{index}")(x)
        x = keras.layers.ReLU(name=f"{name}_relu{index}")(x)
    return x


def unet_features(x, depth, base_filters, batch_norm=True, dropout=0.0):
    """The U-Net's feature map at the input's resolution, `base_filters` channels.

    Level i of the contracting path has two 3x3 convolutions of
    `base_filters * 2**i` filters and a 2x2 max pooling; the bottleneck has
    `base_filters * 2**depth`; each expanding level is a 2x2 up-convolution,
    the concatenation with the same level's features and two 3x3
    convolutions. Height and width must divide by 2**depth. Layer names
    (`down0_conv1`, ..., `up0_relu2`) are those of the saved U-Net runs.
    """
    skips = []
    for level in range(depth):
        x = double_convolution(x, base_filters * 2**level, batch_norm, f"down{level}")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"down{level}_pool")(x)
    x = double_convolution(x, base_filters * 2**depth, batch_norm, "bottleneck")
    if dropout:
        x = strategy.dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        filters = base_filters * 2**level
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_upconv")(x)
        x = keras.layers.Concatenate(name=f"up{level}_concat")([skips[level], x])
        x = double_convolution(x, filters, batch_norm, f"up{level}")
    return x
