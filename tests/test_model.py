"""The hybrid network: the paper preset against the parameter counts of Tables A.4-A.12, presets, 2.5D, FLOPs."""
import numpy as np
import pytest

from membraneseg.engine.network import model as net

# (layer name in our network, parameters stated in the paper, table)
PAPER_LAYERS = [
    ("enc1_conv1", 640, "A.5"), ("enc1_conv2", 36928, "A.5"), ("enc1_ca_fc1", 260, "A.4"),
    ("enc1_ca_fc2", 320, "A.4"), ("enc1_sa_conv", 99, "A.5"),
    ("enc2_conv1", 73856, "A.10"), ("enc2_conv2", 147584, "A.10"), ("enc3_conv1", 295168, "A.10"),
    ("enc3_conv2", 590080, "A.10"), ("enc4_conv1", 1180160, "A.10"), ("enc4_conv2", 2359808, "A.10"),
    ("enc5_conv1", 4719616, "A.10"), ("enc5_conv2", 9438208, "A.10"),
    ("enc6_conv1", 18876416, "A.11"), ("enc6_conv2", 37750784, "A.11"),
    ("bottleneck_conv1", 75501568, "A.11"), ("bottleneck_conv2", 150999040, "A.11"),
    ("aspp_1x1", 1048832, "A.7"), ("aspp_d6", 9437440, "A.7"), ("aspp_d12", 9437440, "A.7"),
    ("aspp_d18", 9437440, "A.7"), ("aspp_pool", 1048832, "A.7"), ("aspp_fuse", 327936, "A.7"),
    ("lstm", 1574912, "A.8"),
    ("dec1_up", 4719616, "A.9"), ("dec1_conv1", 28312576, "A.9"), ("dec1_conv2", 9438208, "A.9"),
    ("dec1_ca_fc1", 65600, "A.9"), ("dec1_ca_fc2", 66560, "A.9"), ("dec1_sa_conv", 99, "A.9"),
    ("dec2_up", 4719104, "A.11"), ("dec3_up", 1179904, "A.11"), ("dec4_up", 295040, "A.12"),
    ("dec5_up", 73792, "A.12"), ("output", 33, "A.12"),
]
# Table A.12 gives 73,792 for the last transposed conv (64 -> 32 filters, 3x3), a copy of the row above it:
# with the table's own kernel and widths it has 3*3*64*32 + 32 = 18,464 parameters. We follow the structure.
INCONSISTENT = {"dec6_up": (73792, 18464)}


@pytest.fixture(scope="module")
def paper():
    return net.build(net.NetworkSpec.from_preset("paper"))


@pytest.mark.parametrize("name,expected,table", PAPER_LAYERS)
def test_paper_layer_parameters(paper, name, expected, table):
    assert paper.get_layer(name).count_params() == expected, "Table %s" % table


def test_paper_inconsistent_row_follows_structure(paper):
    stated, structural = INCONSISTENT["dec6_up"]
    assert paper.get_layer("dec6_up").count_params() == structural != stated


def test_paper_shapes(paper):
    # Table A.10-A.12 output shapes: skips at 224..7, bottleneck 3x3, decoder back to 224
    assert paper.get_layer("enc6_sa_apply").output.shape[1:] == (7, 7, 2048)
    assert paper.get_layer("bottleneck_sa_apply").output.shape[1:] == (3, 3, 4096)
    assert paper.get_layer("lstm").output.shape[1:] == (9, 512)
    assert paper.get_layer("dec1_pad").output.shape[1:] == (7, 7, 1024)
    assert paper.get_layer("dec1_cat").output.shape[1:] == (7, 7, 3072)
    assert paper.output.shape[1:] == (224, 224, 1)
    assert net.count_params(paper) == 398_594_850


@pytest.mark.parametrize("preset,params", [("cpu-large", 24.9e6), ("cpu", 6.2e6), ("cpu-small", 1.56e6)])
def test_cpu_presets_keep_structure_with_fewer_filters(paper, preset, params):
    m = net.build(net.NetworkSpec.from_preset(preset))
    assert abs(net.count_params(m) - params) / params < 0.02
    assert [(l.name, type(l)) for l in m.layers] == [(l.name, type(l)) for l in paper.layers]
    assert m.get_layer("enc1_conv1").filters < paper.get_layer("enc1_conv1").filters


def test_two_and_a_half_d_runs_a_bidirectional_lstm_across_z():
    import keras
    keras.utils.set_random_seed(0)
    spec = net.NetworkSpec.from_preset("tiny", context=5)
    m = net.build(spec, patch=96)
    assert m.input.shape[1:] == (5, 96, 96, 1)
    assert m.output.shape[1:] == (96, 96, 1)
    assert m.get_layer("lstm").__class__.__name__ == "Bidirectional"
    # At initialisation the attention gates roughly halve activations in every block, so what reaches the
    # bottleneck is tiny; a large input scale keeps the z-LSTM's response measurable.
    x = 1e4 * np.random.default_rng(0).normal(size=(2, 5, 96, 96, 1)).astype("float32")
    probe = keras.Model(m.input, [m.get_layer("lstm_out").output, m.output])
    lstm, y = (t.numpy() for t in probe(x, training=False))
    assert y.shape == (2, 96, 96, 1) and np.all((y >= 0) & (y <= 1))
    # changing an outer context slice changes the z-LSTM's output at the central slice ...
    x2 = x.copy()
    x2[:, 0] = 1e4 * np.random.default_rng(5).normal(size=(2, 96, 96, 1))
    lstm2, _ = (t.numpy() for t in probe(x2, training=False))
    assert np.abs(lstm2 - lstm).max() > 1e-3 * np.abs(lstm).max() > 0
    # ... and each sample only sees its own slices
    x3 = x.copy()
    x3[1] *= 2
    np.testing.assert_allclose(probe(x3, training=False)[0].numpy()[0], lstm[0], rtol=1e-5, atol=1e-7)


def test_two_and_a_half_d_skips_fuse_the_context_slices():
    """The decoder sees the neighbour slices at full resolution: a local change in an outer slice changes the
    output there, once the fusion takes from the neighbours (at initialisation it passes the central slice's
    skips through, and then the output equals that of a central-skip network with the same weights)."""
    import keras
    keras.utils.set_random_seed(0)
    spec = net.NetworkSpec.from_preset("tiny", context=3)
    assert spec.skip_fusion and not net.NetworkSpec.from_preset("tiny").skip_fusion
    fused = net.build(spec, patch=64)
    old = net.NetworkSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "skip_fusion"})
    assert not old.skip_fusion                     # a card written before the fusion rebuilds its own network
    central = net.build(old, patch=64)
    assert any(layer.name == "skip1_centre" for layer in central.layers)
    x = np.random.default_rng(1).normal(size=(1, 3, 64, 64, 1)).astype("float32")
    # same weights layer by layer (the fusion convs aside): identical outputs at initialisation
    net.copy_weights(fused, central)
    np.testing.assert_allclose(fused(x).numpy(), central(x).numpy(), rtol=1e-4, atol=1e-6)
    for layer in fused.layers:                     # let every fused skip average the three slices
        if layer.name.endswith("_fuse") and layer.name.startswith("skip"):
            kernel, bias = layer.get_weights()
            c = kernel.shape[-1]
            kernel[0, 0] = np.tile(np.eye(c, dtype="float32"), (3, 1)) / 3.0
            layer.set_weights([kernel, bias])
    x2 = x.copy()
    x2[0, 0, 28:36, 28:36] += 5.0                  # a local change in the first (outer) slice only
    change = np.abs(fused(x2).numpy() - fused(x).numpy())[0, ..., 0]
    assert change[26:38, 26:38].max() > 20 * max(change[:10, :10].max(), 1e-9)
    assert np.abs(central(x2).numpy() - central(x).numpy())[0, 26:38, 26:38].max() < change[26:38, 26:38].max()


def test_the_context_step_travels_with_the_spec_and_older_cards_read_as_adjacent_slices():
    spec = net.NetworkSpec.from_preset("tiny", context=3, context_step=8)
    assert net.NetworkSpec.from_dict(spec.to_dict()).context_step == 8
    older = {k: v for k, v in spec.to_dict().items() if k != "context_step"}
    assert net.NetworkSpec.from_dict(older).context_step == 1
    for bad in (0, 2.5):
        with pytest.raises(ValueError, match="context step"):
            net.NetworkSpec.from_preset("tiny", context=3, context_step=bad)


def test_multiclass_softmax():
    m = net.build(net.NetworkSpec.from_preset("tiny", classes=4), patch=64)
    y = m(np.zeros((1, 64, 64, 1), "float32")).numpy()
    assert y.shape == (1, 64, 64, 4)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-5)


def test_flops_scale_with_context():
    one = net.flops_per_patch(net.build(net.NetworkSpec.from_preset("cpu")))
    five = net.flops_per_patch(net.build(net.NetworkSpec.from_preset("cpu", context=5)))
    assert 0.9e9 < one < 1.1e9
    assert 2.5 * one < five < 5 * one


def test_bad_specs_are_refused():
    with pytest.raises(ValueError, match="preset"):
        net.NetworkSpec.from_preset("huge")
    with pytest.raises(ValueError, match="odd"):
        net.NetworkSpec.from_preset("tiny", context=4)
    with pytest.raises(ValueError, match="too small"):
        net.build(net.NetworkSpec.from_preset("tiny"), patch=32)
