"""Keras 3 / TensorFlow image models: DCGAN, GAN evaluation, Pix2Pix, U-Net and a pneumonia CNN.

Imported before TensorFlow, the package turns on TensorFlow's oneDNN CPU
kernels (`TF_ENABLE_ONEDNN_OPTS=1`) unless the environment already sets the
variable. TensorFlow turns them on by itself only on x86 CPUs it counts as
recent (AVX-512 VNNI or BF16, AMX); on an AVX2 CPU it would train these models
with its slower Eigen kernels (docs/benchmarks.md, "oneDNN on AVX2 CPUs").
`TF_ENABLE_ONEDNN_OPTS=0` keeps them off.
"""

import os

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"

os.environ.setdefault(ONEDNN_VARIABLE, "1")
