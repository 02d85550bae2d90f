"""The hybrid network of the paper (Appendix A), in Keras, built from a preset.

Structure (Tables A.4-A.12): six encoder conv blocks (two 3x3 convs, channel attention, 7x7 spatial attention),
each followed by 2x2 max-pooling and dropout; a bottleneck conv block, an ASPP block (1x1, three dilated 3x3 and
an image-pooling 1x1 branch, fused by a 1x1 conv) and an LSTM; six decoder blocks (3x3 transposed conv with
stride 2, zero-padding to the skip, dropout on the skip, concatenation, conv block, dropout); a 1x1 output conv.

Input modes:
- single slice (context 1): the LSTM runs over the bottleneck positions of the slice, as the authors' notebook
  does (Table A.8);
- 2.5D (context k, odd): k neighbouring z-slices share the encoder, and a bidirectional LSTM runs across z at
  every bottleneck position (section 3.1 of the paper). The decoder's skips fuse the k slices' features with a
  1x1 conv that starts as the central slice's (``skip_fusion``). With the central slice's skips alone (models
  whose card predates the fusion), the z-context reached only the 3x3 bottleneck, and a trained k=3 model
  changed no voxel when its context slices were replaced.

The network is always rebuilt from its preset and widths, and only weights are loaded into it, so no model file
ever carries code.
"""
import math
from dataclasses import asdict, dataclass, field

import keras
from keras import layers, ops

# Widths of the paper's network (Tables A.4-A.12).
PAPER_WIDTHS = dict(encoder=[64, 128, 256, 512, 1024, 2048], bottleneck=4096, aspp=256, lstm=512,
                    decoder=[1024, 512, 256, 128, 64, 32])
ASPP_DILATIONS = (6, 12, 18)
ATTENTION_REDUCTION = 16   # 64 -> 4 and 1024 -> 64 in Tables A.4 and A.9
SPATIAL_KERNEL = 7
OUTPUT_PRIOR_LOGIT = -2.2  # sigmoid(-2.2) = 0.10, about the membrane fraction of annotated slices
# Initialisation. With Keras' defaults (Glorot weights, zero biases) every attention gate starts at sigmoid(0) =
# 0.5, so each block halves its signal twice and a 224x224 input reaches the bottleneck about 1e-7 times as
# strong: training crawls. He-normal weights keep ReLU convolutions variance-preserving, and gate biases of +3
# (sigmoid 0.95) let the gates start almost open and learn to close. Parameter counts are unchanged.
RELU_INIT = "he_normal"
GATE_BIAS = keras.initializers.Constant(3.0)


def scaled_widths(scale, floor=2):
    """The paper's widths divided by ``scale`` (a power of two), never below ``floor`` filters."""
    def s(w):
        return max(floor, int(w // scale))
    return dict(encoder=[s(w) for w in PAPER_WIDTHS["encoder"]], bottleneck=s(PAPER_WIDTHS["bottleneck"]),
                aspp=s(PAPER_WIDTHS["aspp"]), lstm=s(PAPER_WIDTHS["lstm"]),
                decoder=[s(w) for w in PAPER_WIDTHS["decoder"]])


# name -> (width divisor, dropout, fewest filters per layer). The paper uses dropout 0.5 everywhere; the small
# presets use less, because a network with few filters loses too much of its capacity to it. cpu-fine is cpu-small
# with at least 16 filters in every layer: divided by 16, the full-resolution layers keep 2-4 filters, too few to
# draw a 2-pixel-thin membrane, and on the real slices cpu-fine's training loss fell as far in 2 epochs as
# cpu-small's in 7 (recipes/results), for 2% more parameters.
PRESETS = {
    "paper": (1, 0.5, 2),
    "cpu-large": (4, 0.3, 2),
    "cpu": (8, 0.2, 2),
    "cpu-fine": (16, 0.1, 16),
    "cpu-small": (16, 0.1, 2),
    "tiny": (32, 0.0, 2),
}


@dataclass
class NetworkSpec:
    """Everything needed to rebuild the network: saved with every model."""
    preset: str = "cpu"
    context: int = 1              # z-slices in (1 = single slice, odd k >= 3 = 2.5D)
    classes: int = 1              # 1 = binary (sigmoid); >= 2 = softmax over classes
    dropout: float = 0.2
    widths: dict = field(default_factory=lambda: scaled_widths(8))
    skip_fusion: bool = False     # 2.5D: skips fuse the k slices (new models) or take the central one (older)
    # 2.5D: working voxels between the k slices. 1 = adjacent. Farther apart, an edge-on membrane, which runs on
    # through z, can be told from a filament lying in the slice, which has left the neighbours (actin is 7 nm
    # thick); the network is the same
    context_step: int = 1

    @classmethod
    def from_preset(cls, preset, context=1, classes=1, context_step=1):
        if preset not in PRESETS:
            raise ValueError("unknown preset %r; choose one of %s" % (preset, ", ".join(PRESETS)))
        if context < 1 or context % 2 == 0:
            raise ValueError("context must be 1 (single slice) or an odd number of z-slices, not %d" % context)
        if int(context_step) != context_step or context_step < 1:
            raise ValueError("the context step must be a whole number of slices, 1 or more, not %r" % context_step)
        scale, dropout, floor = PRESETS[preset]
        return cls(preset=preset, context=context, classes=classes, dropout=dropout,
                   widths=scaled_widths(scale, floor), skip_fusion=context > 1, context_step=int(context_step))

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        # cards written before skip fusion existed rebuild the network they were trained as
        return cls(skip_fusion=d.get("skip_fusion", False), context_step=d.get("context_step", 1),
                   **{k: d[k] for k in ("preset", "context", "classes", "dropout", "widths")})


# ----------------------------------------------------------------------------- custom layers (no Lambda layers)
@keras.saving.register_keras_serializable("membraneseg")
class ChannelPool(layers.Layer):
    """Channel mean and channel max, stacked: the input of the spatial attention conv."""

    def call(self, x):
        return ops.concatenate([ops.mean(x, axis=-1, keepdims=True), ops.max(x, axis=-1, keepdims=True)], axis=-1)

    def compute_output_shape(self, shape):
        return tuple(shape[:-1]) + (2,)


@keras.saving.register_keras_serializable("membraneseg")
class PositionSequence(layers.Layer):
    """(B, H, W, C) -> (B, H*W, C): the bottleneck positions of one slice as a sequence (Table A.8)."""

    def call(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1] * shape[2], shape[3]))


@keras.saving.register_keras_serializable("membraneseg")
class PositionGrid(layers.Layer):
    """(B, H*W, C) -> (B, H, W, C), the inverse of PositionSequence for a known grid."""

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = height, width

    def call(self, x):
        return ops.reshape(x, (ops.shape(x)[0], self.height, self.width, ops.shape(x)[-1]))

    def get_config(self):
        return dict(super().get_config(), height=self.height, width=self.width)


@keras.saving.register_keras_serializable("membraneseg")
class FoldSlices(layers.Layer):
    """(B, K, H, W, C) -> (B*K, H, W, C): the k context slices share one encoder."""

    def call(self, x):
        s = ops.shape(x)
        return ops.reshape(x, (s[0] * s[1], s[2], s[3], s[4]))


class ContextLayer(layers.Layer):
    """A layer that regroups the (B*K, H, W, C) features of k context slices; ``slices`` gives (B, K, H, W, C)
    and ``by_position`` (B, H, W, K, C)."""

    def __init__(self, k, **kwargs):
        super().__init__(**kwargs)
        self.k = k

    def slices(self, x):
        s = ops.shape(x)
        return ops.reshape(x, (-1, self.k, s[1], s[2], s[3]))

    def by_position(self, x):
        return ops.transpose(self.slices(x), (0, 2, 3, 1, 4))

    def get_config(self):
        return dict(super().get_config(), k=self.k)


@keras.saving.register_keras_serializable("membraneseg")
class CentralSlice(ContextLayer):
    """(B*K, H, W, C) -> (B, H, W, C): the features of the central slice of each group of k."""

    def call(self, x):
        return self.slices(x)[:, self.k // 2]


@keras.saving.register_keras_serializable("membraneseg")
class SliceChannels(ContextLayer):
    """(B*K, H, W, C) -> (B, H, W, K*C): the k slices' features side by side, slice-major, for a 1x1 fusion."""

    def call(self, x):
        s = ops.shape(x)
        return ops.reshape(self.by_position(x), (-1, s[1], s[2], self.k * s[3]))

    def compute_output_shape(self, shape):
        return (None, shape[1], shape[2], self.k * shape[3])


@keras.saving.register_keras_serializable("membraneseg")
class CentralIdentity(keras.initializers.Initializer):
    """A 1x1 kernel (1, 1, K*C, C) that passes the central slice's C channels through and ignores the others:
    a fused skip starts as the central slice's skip and learns how much of the neighbours to take."""

    def __init__(self, k):
        self.k = k

    def __call__(self, shape, dtype=None):
        import numpy as np
        c = shape[-1]
        kernel = np.zeros(shape, "float32")
        kernel[0, 0, (self.k // 2) * c:(self.k // 2 + 1) * c] = np.eye(c, dtype="float32")
        return ops.convert_to_tensor(kernel, dtype=dtype)

    def get_config(self):
        return {"k": self.k}


def fused_skip(x, k, name):
    """The k slices' skip features (B*K, H, W, C) fused into one (B, H, W, C) by a linear 1x1 conv."""
    c = x.shape[-1]
    x = SliceChannels(k, name=name + "_slices")(x)
    return layers.Conv2D(c, 1, kernel_initializer=CentralIdentity(k), name=name + "_fuse")(x)


@keras.saving.register_keras_serializable("membraneseg")
class ZSequence(ContextLayer):
    """(B*K, H, W, C) -> (B*H*W, K, C): at each bottleneck position, the sequence of the k slices along z."""

    def call(self, x):
        return ops.reshape(self.by_position(x), (-1, self.k, ops.shape(x)[3]))


@keras.saving.register_keras_serializable("membraneseg")
class ZCentre(layers.Layer):
    """(B*H*W, K, C) -> (B, H, W, C): the LSTM output at the central slice, back on the bottleneck grid."""

    def __init__(self, k, height, width, **kwargs):
        super().__init__(**kwargs)
        self.k, self.height, self.width = k, height, width

    def call(self, x):
        centre = x[:, self.k // 2]
        return ops.reshape(centre, (-1, self.height, self.width, ops.shape(centre)[-1]))

    def get_config(self):
        return dict(super().get_config(), k=self.k, height=self.height, width=self.width)


# ----------------------------------------------------------------------------- blocks
def channel_attention(x, name):
    """Squeeze-and-excitation (Table A.4)."""
    c = x.shape[-1]
    a = layers.GlobalAveragePooling2D(name=name + "_gap")(x)
    a = layers.Dense(max(1, c // ATTENTION_REDUCTION), activation="relu", kernel_initializer=RELU_INIT,
                     name=name + "_fc1")(a)
    a = layers.Dense(c, activation="sigmoid", bias_initializer=GATE_BIAS, name=name + "_fc2")(a)
    a = layers.Reshape((1, 1, c), name=name + "_reshape")(a)
    return layers.Multiply(name=name + "_scale")([x, a])


def spatial_attention(x, name):
    """A 7x7 conv over the channel mean and max maps gives a sigmoid weight per pixel (Fig. A.14)."""
    a = ChannelPool(name=name + "_pool")(x)
    a = layers.Conv2D(1, SPATIAL_KERNEL, padding="same", activation="sigmoid", bias_initializer=GATE_BIAS,
                      name=name + "_conv")(a)
    return layers.Multiply(name=name + "_apply")([x, a])


def conv_block(x, filters, name):
    """Two 3x3 ReLU convs, channel attention, spatial attention (Table A.5)."""
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=RELU_INIT,
                      name=name + "_conv1")(x)
    x = layers.Conv2D(filters, 3, padding="same", activation="relu", kernel_initializer=RELU_INIT,
                      name=name + "_conv2")(x)
    x = channel_attention(x, name + "_ca")
    return spatial_attention(x, name + "_sa")


def aspp_block(x, filters, name):
    """Atrous spatial pyramid pooling (Table A.7): 1x1, three dilated 3x3, and an image-level 1x1 branch."""
    h, w = x.shape[1], x.shape[2]
    branches = [layers.Conv2D(filters, 1, padding="same", activation="relu", kernel_initializer=RELU_INIT,
                              name=name + "_1x1")(x)]
    for d in ASPP_DILATIONS:
        branches.append(layers.Conv2D(filters, 3, padding="same", dilation_rate=d, activation="relu",
                                      kernel_initializer=RELU_INIT,
                                      name=name + "_d%d" % d)(x))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=name + "_gap")(x)
    pooled = layers.Conv2D(filters, 1, padding="same", activation="relu", kernel_initializer=RELU_INIT,
                           name=name + "_pool")(pooled)
    branches.append(layers.UpSampling2D((h, w), name=name + "_up")(pooled))
    x = layers.Concatenate(name=name + "_cat")(branches)
    return layers.Conv2D(filters, 1, padding="same", activation="relu", kernel_initializer=RELU_INIT,
                         name=name + "_fuse")(x)


def bottleneck_size(patch):
    """Spatial size after the six 2x2 poolings (224 -> 3)."""
    for _ in range(6):
        patch //= 2
    return patch


def check_patch(patch):
    if bottleneck_size(patch) < 1:
        raise ValueError("patch size %d is too small: six 2x2 poolings need at least 64 pixels" % patch)


def build(spec: NetworkSpec, patch=224, name=None):
    """The hybrid network for square patches of ``patch`` pixels. Input (B, P, P, 1) for a single slice or
    (B, K, P, P, 1) for 2.5D; output (B, P, P, classes) probabilities."""
    check_patch(patch)
    w, k, drop = spec.widths, spec.context, spec.dropout
    if k == 1:
        inputs = keras.Input((patch, patch, 1), name="slice")
        x = inputs
    else:
        inputs = keras.Input((k, patch, patch, 1), name="slices")
        x = FoldSlices(name="fold_slices")(inputs)

    skips = []
    for i, filters in enumerate(w["encoder"]):
        x = conv_block(x, filters, "enc%d" % (i + 1))
        skips.append(x)
        x = layers.MaxPooling2D(2, name="enc%d_pool" % (i + 1))(x)
        x = layers.Dropout(drop, name="enc%d_drop" % (i + 1))(x)
    x = conv_block(x, w["bottleneck"], "bottleneck")
    x = layers.Dropout(drop, name="bottleneck_drop")(x)
    x = aspp_block(x, w["aspp"], "aspp")

    bh, bw = x.shape[1], x.shape[2]
    if k == 1:
        seq = PositionSequence(name="lstm_in")(x)
        seq = layers.LSTM(w["lstm"], return_sequences=True, name="lstm")(seq)
        seq = layers.Dropout(drop, name="lstm_drop")(seq)
        x = PositionGrid(bh, bw, name="lstm_out")(seq)
    else:
        seq = ZSequence(k, name="lstm_in")(x)
        seq = layers.Bidirectional(layers.LSTM(w["lstm"] // 2, return_sequences=True), name="lstm")(seq)
        seq = layers.Dropout(drop, name="lstm_drop")(seq)
        x = ZCentre(k, bh, bw, name="lstm_out")(seq)
        if spec.skip_fusion:
            skips = [fused_skip(s, k, "skip%d" % (i + 1)) for i, s in enumerate(skips)]
        else:
            skips = [CentralSlice(k, name="skip%d_centre" % (i + 1))(s) for i, s in enumerate(skips)]

    for i, filters in enumerate(w["decoder"]):
        skip = skips[-1 - i]
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name="dec%d_up" % (i + 1))(x)
        dh, dw = skip.shape[1] - x.shape[1], skip.shape[2] - x.shape[2]
        if dh or dw:
            x = layers.ZeroPadding2D(((0, dh), (0, dw)), name="dec%d_pad" % (i + 1))(x)
        skip = layers.Dropout(drop, name="dec%d_skipdrop" % (i + 1))(skip)
        x = layers.Concatenate(name="dec%d_cat" % (i + 1))([x, skip])
        x = conv_block(x, filters, "dec%d" % (i + 1))
        x = layers.Dropout(drop, name="dec%d_drop" % (i + 1))(x)

    if spec.classes == 1:
        # start from the prior membrane fraction (~10%) rather than 0.5, so early training is not spent on
        # the bias (the prior-probability initialisation of Lin et al. 2017)
        outputs = layers.Conv2D(1, 1, activation="sigmoid", name="output", dtype="float32",
                                bias_initializer=keras.initializers.Constant(OUTPUT_PRIOR_LOGIT))(x)
    else:
        outputs = layers.Conv2D(spec.classes, 1, activation="softmax", name="output", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name or "membraneseg_%s_k%d" % (spec.preset, k))


def flops_per_patch(model):
    """FLOPs (2 per multiply-add) of one forward pass on one patch, counted over the conv, dense and LSTM layers,
    which hold all but a negligible part of the work."""
    k = model.inputs[0].shape[1] if len(model.inputs[0].shape) == 5 else 1
    return sum(layer_flops(layer, k, model.inputs[0].shape[2]) for layer in model.layers)


def layer_flops(layer, k=1, patch=None):
    """FLOPs of one layer for one patch (0 for layers without multiply-adds); ``k`` context slices, and the
    ``patch`` size, which the 2.5D LSTM's sequence count depends on."""
    if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):
        kh, kw = layer.kernel_size
        # a transposed conv spreads each input position over kh*kw outputs; a conv gathers them per output
        grid = layer.input.shape if isinstance(layer, layers.Conv2DTranspose) else layer.output.shape
        macs = grid[1] * grid[2] * kh * kw * layer.input.shape[-1] * layer.filters
        return 2 * macs * _slices_through(layer, k)
    if isinstance(layer, layers.Dense):
        return 2 * layer.input.shape[-1] * layer.units * _slices_through(layer, k)
    if isinstance(layer, (layers.LSTM, layers.Bidirectional)):
        cells = [layer.forward_layer, layer.backward_layer] if isinstance(layer, layers.Bidirectional) else [layer]
        steps, cin = layer.input.shape[1], layer.input.shape[-1]
        sequences = 1 if k == 1 else bottleneck_size(patch) ** 2
        return sum(2 * 4 * (cin + cell.units) * cell.units * steps * sequences for cell in cells)
    return 0


def _slices_through(layer, k):
    """Encoder layers run on every context slice; decoder layers on the central one only."""
    if k == 1:
        return 1
    return k if layer.name.startswith(("enc", "bottleneck", "aspp")) else 1


def copy_weights(source, target):
    """Copy weights layer by layer, matched by name: the same network built for another input size may list its
    layers in another order (2.5D skip fusion convs move between decoder layers when padding layers appear)."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())


def count_params(model):
    return int(sum(math.prod(w.shape) for w in model.weights))
