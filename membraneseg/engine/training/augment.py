"""Augmentation of training patches. Geometric, as in section 3.1 of the paper: rotation 0-20°, shifts up to 20%,
zoom 0.8-1.2, horizontal flips, nearest fill. Two options go further, for models that must work on fields of view
unlike their training data: turns by multiples of 90°, and changes of intensity (contrast, brightness, blur, noise)
and of look (uneven background, tone curve, sharpening), because cryo-ET slices differ from lab to lab in exactly
those. The same change applies to every z-slice of a 2.5D patch.
"""
import numpy as np


def geometric(stack, label, rng, patch, rot90=False, reflect=False):
    """Rotation 0-20° (either sense), shift up to 20%, zoom 0.8-1.2, horizontal flip; nearest fill, or mirrored
    with ``reflect``. With ``rot90``, a turn by a random multiple of 90° on top."""
    import cv2
    border = cv2.BORDER_REFLECT_101 if reflect else cv2.BORDER_REPLICATE
    size = label.shape[0]
    angle = rng.uniform(-20, 20) + (90.0 * rng.integers(4) if rot90 else 0.0)
    zoom = rng.uniform(0.8, 1.2)
    shift = rng.uniform(-0.2, 0.2, size=2) * patch
    centre = (size / 2.0, size / 2.0)
    m = cv2.getRotationMatrix2D(centre, angle, zoom)
    # move the region's centre to the patch centre, plus the random shift
    m[:, 2] += np.array([patch / 2.0 - centre[0], patch / 2.0 - centre[1]]) + shift
    flip = rng.random() < 0.5
    out = []
    for a in stack:
        w = cv2.warpAffine(a, m, (patch, patch), flags=cv2.INTER_LINEAR, borderMode=border)
        out.append(w[:, ::-1] if flip else w)
    lab = cv2.warpAffine(label, m, (patch, patch), flags=cv2.INTER_NEAREST, borderMode=border)
    return out, (lab[:, ::-1] if flip else lab)


def jitter_intensity(stack, rng, strength):
    """The same random contrast, brightness, blur and noise for every slice of a patch (the input is normalised
    to mean 0, s.d. 1, so the amounts are in units of its standard deviation)."""
    import cv2
    contrast = np.exp(rng.normal(0.0, 0.3 * strength))
    offset = rng.normal(0.0, 0.2 * strength)
    sigma = rng.uniform(0.0, 1.5 * strength) if rng.random() < 0.5 else 0.0
    noise = rng.uniform(0.0, 0.5 * strength) if rng.random() < 0.5 else 0.0
    out = []
    for a in stack:
        a = a * contrast + offset
        if sigma > 0.2:
            a = cv2.GaussianBlur(a, (0, 0), sigma)
        if noise > 0:
            a = a + rng.normal(0.0, noise, a.shape).astype(np.float32)
        out.append(a.astype(np.float32))
    return out


def restyle(stack, rng, strength):
    """The same random change of look for every slice of a patch, for fields of view unlike the training ones:
    an uneven background (a smooth random field, as uneven ice thickness or illumination gives), a tone curve
    (gamma), and either sharpening (the strongly filtered look of some reconstructions) or smoothing. The patch
    is then standardised again, as the input of segmentation is."""
    import cv2
    size = stack[0].shape
    field = cv2.resize(rng.normal(0.0, 0.6 * strength, (3, 3)).astype(np.float32), size[::-1],
                       interpolation=cv2.INTER_CUBIC)
    gamma = float(np.exp(rng.normal(0.0, 0.35 * strength)))
    amount = rng.uniform(-0.5, 1.5) * strength       # < 0 smooths, > 0 sharpens
    sigma = rng.uniform(1.0, 3.0)
    out = []
    for a in stack:
        lo, hi = np.percentile(a, (0.5, 99.5))
        u = np.clip((a - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** gamma
        u = u + amount * (u - cv2.GaussianBlur(u, (0, 0), sigma)) + field
        out.append(((u - u.mean()) / max(float(u.std()), 1e-6)).astype(np.float32))
    return out
