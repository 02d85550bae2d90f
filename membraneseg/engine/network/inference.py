"""Rewrites of a loaded network that make inference faster on a CPU without changing its results (up to float
rounding); segmentation applies them to every model it loads for one window size."""


def optimise_for_inference(model):
    """Rewrite, in place, two kinds of convolution that TensorFlow runs slowly on a CPU, keeping their results
    (up to float rounding). For inference models built for one window size only.

    - A 'same' conv dilated by d >= the height and width of its input reads zeros at every off-centre tap, so it
      equals the undilated conv with its off-centre taps zeroed. TensorFlow computes dilated convs by
      space-to-batch padding, which costs ~20x a plain conv on the 3x3 or 4x4 bottleneck of the ASPP block
      (dilations 6, 12, 18).
    - The spatial-attention convs (k x k, 2 channels in, 1 out) run in oneDNN at a few GFLOP/s; as a depthwise
      conv summed over its 2 channels they take about 40% less time, and at full resolution they are a fifth
      of the small presets' time.
    """
    import keras
    from keras import ops
    for layer in model.layers:
        if not isinstance(layer, keras.layers.Conv2D) or layer.padding != "same" or max(layer.strides) > 1:
            continue
        if max(layer.dilation_rate) > 1 and all(d >= s for d, s in zip(layer.dilation_rate,
                                                                        layer.input.shape[1:3])):
            kernel = layer.kernel.numpy()
            ch, cw = kernel.shape[0] // 2, kernel.shape[1] // 2
            centre = kernel[ch, cw].copy()
            kernel[:] = 0
            kernel[ch, cw] = centre
            layer.kernel.assign(kernel)
            layer.dilation_rate = (1, 1)
        elif layer.filters == 1 and max(layer.kernel_size) > 1 and max(layer.dilation_rate) == 1:
            # the kernel (k, k, channels, 1) is also a depthwise kernel with one output per channel
            layer.convolution_op = lambda x, kernel: ops.sum(
                ops.depthwise_conv(x, kernel, strides=1, padding="same"), axis=-1, keepdims=True)
