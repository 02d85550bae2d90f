"""What the training protocols ("train membrane model", "train mask-to-image GAN") share: pairing tomograms with
their label maps by tsId, folders of 2D images with their masks, label lists typed in a form, and the engine options
for all of these. Plain functions of Scipion sets and strings, so that tests can call them without a project."""
import os
import re

from ..engine.core import io


def pairingErrors(tomos, masks):
    """Why tomograms and their label maps cannot be paired by tsId (empty when every tomogram has exactly one
    label map of the same size and sampling rate)."""
    if tomos.getSize() == 0:
        return ["The input set of tomograms is empty."]
    if masks is None:
        return ["The tomograms need their label maps: give a set of tomo masks with the same tsIds."]

    def byTsId(items, what):
        found, twice = {}, set()
        for item in items:
            twice.update([item.getTsId()] if item.getTsId() in found else [])
            found[item.getTsId()] = (tuple(item.getDimensions()), item.getSamplingRate())
        return found, (["%s: tsId %s appears more than once." % (what, ", ".join(sorted(twice)))] if twice else [])

    tomoItems, errors = byTsId(tomos, "Tomograms")
    maskItems, maskErrors = byTsId(masks, "Label maps")
    errors += maskErrors
    missing, extra = sorted(set(tomoItems) - set(maskItems)), sorted(set(maskItems) - set(tomoItems))
    if missing:
        errors.append("No label map has the tsId of tomogram(s) %s (%d tomograms, %d label maps): every tomogram "
                      "needs one." % (", ".join(missing), len(tomoItems), len(maskItems)))
    if extra:
        errors.append("Label map(s) %s have no tomogram with the same tsId (%d tomograms, %d label maps)."
                      % (", ".join(extra), len(tomoItems), len(maskItems)))
    for tsId in sorted(set(tomoItems) & set(maskItems)):
        (tomoDims, tomoRate), (maskDims, maskRate) = tomoItems[tsId], maskItems[tsId]
        if tomoDims != maskDims:
            errors.append("%s: the tomogram is %s voxels but its label map is %s." % (
                tsId, " x ".join(map(str, tomoDims)), " x ".join(map(str, maskDims))))
        if abs(tomoRate - maskRate) > 1e-3 * tomoRate:
            errors.append("%s: the tomogram is at %.3f Å/px but its label map at %.3f Å/px." % (
                tsId, tomoRate, maskRate))
    return errors


def parseLabels(text):
    """'1 2' or '1, 2' -> [1, 2]; ValueError when it is not a list of label values 0-255."""
    values = [int(v) for v in re.split(r"[\s,;]+", (text or "").strip()) if v]
    if not values or any(not 0 <= v <= 255 for v in values):
        raise ValueError(text)
    return values


def labelErrors(text):
    """Why ``text`` is not a list of membrane label values (empty when it is one)."""
    try:
        parseLabels(text)
        return []
    except ValueError:
        return ["Membrane label values must be whole numbers 0-255 separated by spaces, e.g. 1 2; not '%s'." % text]


def folderPairs(imagesFolder, masksFolder):
    """(images with a mask of the same name, images without one) in two folders, by file name without extension."""
    def stems(folder):
        return {os.path.splitext(f)[0] for f in os.listdir(folder) if io.is_supported(f)}
    images, masks = stems(imagesFolder), stems(masksFolder)
    return sorted(images & masks), sorted(images - masks)


def dataArgs(protocol):
    """The engine options for a training protocol's annotated data: its tomograms with their masks (paired by
    tsId) and its 2D images folder with its masks folder (attributes inputTomograms, inputMasks, imagesFolder,
    masksFolder, imagesPixelSize)."""
    args = []
    tomos = protocol.inputTomograms.get()
    if tomos is not None:
        masks = {m.getTsId(): m.getFileName() for m in protocol.inputMasks.get()}
        for tomo in tomos:
            args += ["--volume", tomo.getFileName(), masks[tomo.getTsId()]]
        args += ["--volume-pixel-size", "%.4f" % tomos.getSamplingRate()]
    if protocol.imagesFolder.get():
        args += ["--images", protocol.imagesFolder.get(), "--masks", protocol.masksFolder.get()]
        if protocol.imagesPixelSize.get():
            args += ["--image-pixel-size", "%g" % protocol.imagesPixelSize.get()]
    return args


def folderErrors(images, masks, what):
    """Why a folder of 2D images and its masks folder cannot train (empty when they can)."""
    if not images:
        return []
    if not os.path.isdir(images):
        return ["The %s images folder %s does not exist." % (what, images)]
    if not masks or not os.path.isdir(masks):
        return ["The %s images need a masks folder (%s does not exist)." % (what, masks or "none given")]
    if not folderPairs(images, masks)[0]:
        return ["No image in %s has a mask of the same name in %s." % (images, masks)]
    return []
