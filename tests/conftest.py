"""Fixtures and helpers the engine tests share."""
import numpy as np
import pytest

from membraneseg.engine.network import model as net, modelfile
from membraneseg.engine.training import data


def stack_sample(depth=5, size=120, group="", is_2d=False, z_spacing=1.0):
    """A stack whose every slice is constant and equal to its z index, with a disc of label 1 in the middle."""
    image = np.repeat(np.arange(depth, dtype=np.float32)[:, None, None], size, 1).repeat(size, 2)
    yy, xx = np.mgrid[:size, :size]
    labels = np.repeat(((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2)[None], depth, 0)
    return data.Sample(image, labels.astype(np.uint8), "s%s" % group, is_2d, group, z_spacing)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A tiny network with random weights, saved as a model folder at 10 Å/px. The weights are seeded: tests that
    compare two ways of running it must not depend on the draw (an unseeded one once failed a bound by 0.002)."""
    import keras
    keras.utils.set_random_seed(0)
    folder = str(tmp_path_factory.mktemp("model"))
    spec = net.NetworkSpec.from_preset("tiny")
    card = modelfile.ModelCard(network=spec.to_dict(), pixel_size=10.0, patch=96, threshold=0.5)
    modelfile.save(net.build(spec, patch=96), card, folder)
    return folder


SUMMARY = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def summary(pytestconfig):
    """Lines to print at the end of the run (how many random cases the property test ran, for example)."""
    return pytestconfig.stash.setdefault(SUMMARY, [])


def pytest_terminal_summary(terminalreporter, config):
    for line in config.stash.get(SUMMARY, []):
        terminalreporter.write_line(line)
