"""CLAHE (contrast-limited adaptive histogram equalisation) of each z-slice, with OpenCV on a fixed 8-bit range."""
import numpy as np


def to_uint8(image, low, high):
    """Map [low, high] to 0..255 (clipped, rounded): the fixed range CLAHE works on."""
    scale = 255.0 / (high - low) if high > low else 0.0
    return np.clip(np.rint((np.asarray(image, np.float32) - low) * scale), 0, 255).astype(np.uint8)


def clahe_tiles(shape, block):
    """OpenCV's tileGridSize (tiles across X, tiles across Y) for slices of ``shape`` (Y, X) and ``block`` px."""
    return max(1, shape[1] // block), max(1, shape[0] // block)


def clahe_planes(block, low, high, tile=32, clip=3.0):
    """CLAHE of each z-slice (OpenCV, after mapping [low, high] to 8 bits), returned as float32 in [0, 1]."""
    import cv2
    clahe = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=clahe_tiles(block.shape[1:], tile))
    out = np.empty(block.shape, np.float32)
    for i, plane in enumerate(block):
        out[i] = clahe.apply(to_uint8(plane, low, high))
    out *= 1.0 / 255.0
    return out
