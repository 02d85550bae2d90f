"""The Pix2Pix GAN of the paper's Appendix B: a U-Net generator from a binary membrane mask to a realistic cryo-ET
slice, a PatchGAN discriminator on (mask, image) pairs, their training and their model folder.

Losses are Pix2Pix's: the generator minimises BCE(D(mask, G(mask)), real) + lambda * L1(G(mask), image) with
lambda 100; the discriminator the BCE of real and generated pairs, halved as in Pix2Pix so that it learns more
slowly than the generator. Both use Adam (learning rate 2e-4, beta_1 0.5). ``generate`` makes new pairs.

A GAN model folder holds generator.weights.h5, discriminator.weights.h5, gan_model.json (the card: sizes, pixel
size, how images were scaled, history, training pairs, SHA-256 of the weights) and samples/epoch_NNN.png (rows
mask | generated | real of four fixed crops, one picture per epoch). checkpoint/epoch_NNN keeps the last finished
epoch with the optimizers' state: rerunning with the same settings resumes after it, or trains further when more
epochs are asked for. Every file appears under its name only when complete.
"""
import datetime
import json
import logging
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field

import keras
import numpy as np
from keras import layers

from ...constants import GAN_JSON, GAN_SAMPLES_DIR
from . import data
from ..core import io
from ..network.modelfile import ModelError, read_json_card, save_weights, sha256_of
from ..network.device import describe_device

log = logging.getLogger(__name__)

G_WEIGHTS = "generator.weights.h5"
D_WEIGHTS = "discriminator.weights.h5"
CHECKPOINT_DIR = "checkpoint"
KIND = "membraneseg-pix2pix"
FORMAT = 1
# Generated pictures use the moving statistics of batch normalisation; Keras' default momentum (0.99) needs
# hundreds of steps to forget its start (mean 0, variance 1) and short runs would draw from it.
BN_MOMENTUM = 0.9
DROPOUT_LEVELS = 3
RESUME_SETTINGS = ("size", "filters", "pixel_size", "lambda_l1", "learning_rate", "beta_1", "batch_size", "seed")


# ----------------------------------------------------------------------------- networks
def _init():
    """Pix2Pix's initialisation, N(0, 0.02). A new initialiser per layer: one shared instance draws its seed once,
    when created, and would give every layer of a shape the same weights, whatever the seed of the run."""
    return keras.initializers.RandomNormal(0.0, 0.02)


def _down(x, width, norm=True):
    x = layers.Conv2D(width, 4, strides=2, padding="same", use_bias=not norm, kernel_initializer=_init())(x)
    if norm:
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.LeakyReLU(0.2)(x)


def build_generator(size, filters=32):
    """U-Net from a (size, size, 1) mask in {0, 1} to a (size, size, 1) image in [-1, 1] (tanh). Encoder: 4x4
    stride-2 convolutions of filters x 1, 2, 4, 8, 8... (at most 8 x filters), batch norm but on the first,
    LeakyReLU 0.2; decoder: 4x4 stride-2 transposed convolutions, batch norm, dropout 0.5 on the three innermost
    levels, ReLU, and the encoder's skip concatenated."""
    depth = data.generator_depth(size)
    mask = keras.Input((size, size, 1), name="mask")
    x, skips = mask, []
    for i in range(depth):
        x = _down(x, filters * min(2 ** i, 8), norm=i > 0)
        skips.append(x)
    for j, skip in enumerate(reversed(skips[:-1])):
        x = layers.Conv2DTranspose(skip.shape[-1], 4, strides=2, padding="same", use_bias=False,
                                   kernel_initializer=_init())(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        if j < DROPOUT_LEVELS:
            x = layers.Dropout(0.5)(x)
        x = layers.Concatenate()([layers.ReLU()(x), skip])
    image = layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh", kernel_initializer=_init())(x)
    return keras.Model(mask, image, name="pix2pix_generator")


def build_discriminator(size, filters=32):
    """PatchGAN on concat(mask, image): 4x4 convolutions C(f, stride 2, no batch norm), C(2f, s2), C(4f, s2),
    C(8f, s1), then a 1-channel C(1, s1) giving a (size/8, size/8, 1) map of logits. Each logit judges a 70 x 70
    px patch: the receptive field of five 4x4 kernels with strides 2, 2, 2, 1, 1 is 1 + 3 x (1+2+4+8+8) = 70."""
    data.generator_depth(size)
    mask, image = keras.Input((size, size, 1), name="mask"), keras.Input((size, size, 1), name="image")
    x = layers.Concatenate()([mask, image])
    for width, stride in ((filters, 2), (2 * filters, 2), (4 * filters, 2), (8 * filters, 1)):
        x = layers.Conv2D(width, 4, strides=stride, padding="same", use_bias=width == filters,
                          kernel_initializer=_init())(x)
        if width > filters:
            x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
        x = layers.LeakyReLU(0.2)(x)
    logits = layers.Conv2D(1, 4, padding="same", kernel_initializer=_init())(x)
    return keras.Model([mask, image], logits, name="patchgan_discriminator")


# ----------------------------------------------------------------------------- the model folder
@dataclass
class GanCard:
    size: int                                  # crop side in pixels
    filters: int = 32
    pixel_size: float = 0.0                    # Å per pixel the pairs were made at; 0 = unknown
    lambda_l1: float = 100.0
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    batch_size: int = 4
    seed: int = 0
    epochs_run: int = 0
    history: list = field(default_factory=list)          # per epoch: epoch, g_adv, g_l1, d_loss, seconds
    training_pairs: list = field(default_factory=list)   # per source: source, group, pairs
    scaling: dict = field(default_factory=lambda: dict(data.SCALING))
    generator_sha256: str = ""
    discriminator_sha256: str = ""
    saved: str = ""
    kind: str = KIND
    format: int = FORMAT

    @classmethod
    def from_dict(cls, d):
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def read_gan_card(path) -> GanCard:
    folder = os.path.abspath(str(path))
    card = read_json_card(folder, GAN_JSON, GanCard, FORMAT, "GAN card",
                          "is this a GAN model folder (membraneseg gan train)?")
    if card.kind != KIND:
        raise ModelError(folder, "%s is a %r card, not a %s one" % (GAN_JSON, card.kind, KIND))
    return card


def load_generator(path):
    """(generator, card) of a GAN model folder, after checking the weights' checksum."""
    folder = os.path.abspath(str(path))
    card = read_gan_card(folder)
    weights = os.path.join(folder, G_WEIGHTS)
    if not os.path.isfile(weights):
        raise ModelError(folder, "weights file %s is missing" % G_WEIGHTS)
    actual = sha256_of(weights)
    if actual != card.generator_sha256:
        raise ModelError(folder, "%s checksum mismatch (expected %s, found %s): the file is corrupt or was replaced"
                         % (G_WEIGHTS, card.generator_sha256, actual))
    try:
        generator = build_generator(card.size, card.filters)
        generator.load_weights(weights)
    except Exception as exc:
        raise ModelError(folder, "weights do not fit the generator its card describes (%s)" % exc)
    log.info("GAN model: %s (size %d, filters %d, %.2f Å/px, %d epochs)", folder, card.size, card.filters,
             card.pixel_size, card.epochs_run)
    return generator, card


def _publish(folder, generator, discriminator, card):
    """Weights first, the card last: a folder whose card matches its weights' checksum is complete."""
    for model, name in ((generator, G_WEIGHTS), (discriminator, D_WEIGHTS)):
        save_weights(model, os.path.join(folder, name))
    card.generator_sha256 = sha256_of(os.path.join(folder, G_WEIGHTS))
    card.discriminator_sha256 = sha256_of(os.path.join(folder, D_WEIGHTS))
    card.saved = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    io.write_json(os.path.join(folder, GAN_JSON), card.__dict__, sort_keys=True)


# ----------------------------------------------------------------------------- checkpoints
def _checkpoint(folder, epoch, models, optimizers, state):
    """checkpoint/epoch_NNN, written as a hidden folder and renamed when complete; older epochs are removed."""
    root = os.path.join(folder, CHECKPOINT_DIR)
    tmp, final = os.path.join(root, ".epoch_%03d.partial" % epoch), os.path.join(root, "epoch_%03d" % epoch)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for model, name in zip(models, (G_WEIGHTS, D_WEIGHTS)):
        model.save_weights(os.path.join(tmp, name))
    np.savez(os.path.join(tmp, "optimizers.npz"), *[np.asarray(v) for o in optimizers for v in o.variables])
    io.write_json(os.path.join(tmp, "state.json"), state, sort_keys=True)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    for old in os.listdir(root):
        if old != os.path.basename(final):
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)


def _resume(folder, settings, models, optimizers):
    """(epochs done, history) of the last checkpoint in ``folder``, loaded into the models and optimizers, or
    (0, []) to start afresh. A checkpoint made with other settings is refused, not silently mixed in."""
    root = os.path.join(folder, CHECKPOINT_DIR)
    done = sorted(d for d in (os.listdir(root) if os.path.isdir(root) else []) if d.startswith("epoch_"))
    if not done:
        return 0, []
    last = os.path.join(root, done[-1])
    with open(os.path.join(last, "state.json")) as f:
        state = json.load(f)
    changed = ["%s %s -> %s" % (k, state["settings"].get(k), v) for k, v in settings.items()
               if state["settings"].get(k) != v]
    if changed:
        raise io.InputError(root, "holds a GAN training with other settings (%s); rerun it with the same ones, or "
                                  "delete this folder to start again" % ", ".join(changed))
    for model, name in zip(models, (G_WEIGHTS, D_WEIGHTS)):
        model.load_weights(os.path.join(last, name))
    with np.load(os.path.join(last, "optimizers.npz")) as saved:
        for v, i in zip([v for o in optimizers for v in o.variables], range(len(saved.files))):
            v.assign(saved["arr_%d" % i])
    log.info("resuming the GAN training in %s after epoch %d", folder, state["epoch"])
    return int(state["epoch"]), state["history"]


# ----------------------------------------------------------------------------- training
def _train_step(generator, discriminator, g_opt, d_opt, lambda_l1):
    import tensorflow as tf

    def bce(target, logits):
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits))

    @tf.function
    def step(mask, real):
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(mask, training=True)
            d_real = discriminator([mask, real], training=True)
            d_fake = discriminator([mask, fake], training=True)
            g_adv = bce(tf.ones_like(d_fake), d_fake)
            g_l1 = tf.reduce_mean(tf.abs(real - fake))
            d_loss = 0.5 * (bce(tf.ones_like(d_real), d_real) + bce(tf.zeros_like(d_fake), d_fake))
            g_loss = g_adv + lambda_l1 * g_l1
        for tape, loss, model, opt in ((g_tape, g_loss, generator, g_opt), (d_tape, d_loss, discriminator, d_opt)):
            opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return g_adv, g_l1, d_loss
    return step


def train_gan(pairs, out_dir, size=256, filters=32, epochs=100, steps=None, batch_size=4, lr=2e-4, lambda_l1=100.0,
              seed=0, pixel_size=None):
    """Train on GanPairs (at the GAN's pixel size, images in [-1, 1]) with ``steps`` batches per epoch (default:
    pairs / batch size); write the model folder ``out_dir`` after every epoch and return its card."""
    if not pairs:
        raise ValueError("no training pairs")
    keras.utils.set_random_seed(seed)
    generator, discriminator = build_generator(size, filters), build_discriminator(size, filters)
    steps = steps or max(1, len(pairs) // batch_size)
    optimizers = [keras.optimizers.Adam(lr, beta_1=0.5) for _ in range(2)]
    for opt, model in zip(optimizers, (generator, discriminator)):
        opt.build(model.trainable_variables)
    card = GanCard(size=size, filters=filters, pixel_size=float(pixel_size or 0.0), lambda_l1=float(lambda_l1),
                   learning_rate=float(lr), batch_size=batch_size, seed=seed,
                   training_pairs=[dict(source=s, group=g, pairs=n) for (s, g), n in
                                   Counter((p.source, p.group) for p in pairs).items()])
    settings = {k: getattr(card, k) for k in RESUME_SETTINGS}
    os.makedirs(os.path.join(out_dir, GAN_SAMPLES_DIR), exist_ok=True)
    done, card.history = _resume(out_dir, settings, (generator, discriminator), optimizers)
    device = describe_device()
    log.info("GAN training on %s: %d pair(s), size %d px, filters %d (generator %d, discriminator %d parameters), "
             "epochs %d to %d of %d step(s) of %d", device, len(pairs), size, filters,
             generator.count_params(), discriminator.count_params(), done + 1, epochs, steps, batch_size)
    sampler = data.CropSampler(pairs, size, seed + 7919 * done)   # a resumed run draws new crops
    val_masks, val_images = data.fixed_crops(pairs, size)
    step = _train_step(generator, discriminator, *optimizers, float(lambda_l1))
    for epoch in range(done + 1, epochs + 1):
        start, sums = time.time(), np.zeros(3)
        for _ in range(steps):
            sums += [float(v) for v in step(*sampler.batch(batch_size))]
        g_adv, g_l1, d_loss = sums / steps
        card.history.append(dict(epoch=epoch, g_adv=round(g_adv, 5), g_l1=round(g_l1, 5), d_loss=round(d_loss, 5),
                                 seconds=round(time.time() - start, 2)))
        log.info("epoch %d/%d: g_adv %.4f, g_l1 %.4f, d_loss %.4f, %.1f s on %s", epoch, epochs, g_adv, g_l1,
                 d_loss, time.time() - start, device)
        fake = generator(val_masks, training=False).numpy()
        rows = [[m[..., 0] * 2 - 1, f[..., 0], x[..., 0]] for m, f, x in zip(val_masks, fake, val_images)]
        io.write(os.path.join(out_dir, GAN_SAMPLES_DIR, "epoch_%03d.png" % epoch), data.grid(rows))
        _checkpoint(out_dir, epoch, (generator, discriminator), optimizers,
                    dict(epoch=epoch, settings=settings, history=card.history))
        card.epochs_run = epoch
        _publish(out_dir, generator, discriminator, card)
    if done >= epochs:   # nothing left to run; publish anyway, in case the run was killed before it did
        log.info("%s: already trained for %d epoch(s)", out_dir, done)
        card.epochs_run = done
        _publish(out_dir, generator, discriminator, card)
    return card
