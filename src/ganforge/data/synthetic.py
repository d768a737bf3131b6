"""Built-in procedural data sets: images that need no download.

``builtin:shapes`` (the default data set) holds 20,000 RGB images of one filled shape
(circle, square, triangle, ring or cross; the shape is the label) in a bright, saturated
colour, at a random position, size and rotation, over a darker two-colour gradient.
The shapes are clear and the colours distinct, so a small GAN visibly improves within
minutes of CPU training, and mistakes (wobbly edges, muddy colours, wrong shapes) are
easy to see.

Every image is drawn from a fixed seed, so the data set is the same on every machine.
The scene parameters do not depend on the image size: asking for another resolution
renders the same scenes at that size. Rendering is vectorised with numpy (signed
distance of each pixel to the shape, one pixel of antialiasing).
"""

from __future__ import annotations

import numpy as np

SHAPE_CLASSES = ["circle", "square", "triangle", "ring", "cross"]
NATIVE_SIZE = 32  # native resolution of builtin:shapes
DEFAULT_COUNT = 20_000
DEFAULT_SEED = 20240601

_CHUNK_PIXELS = 2048 * 32 * 32  # pixels rendered at once; bounds the float32 working memory


def shape_parameters(n: int, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Draw the scene parameters of ``n`` images (each a ``(n,)`` array).

    Positions and sizes are in unit coordinates (the image spans 0..1), so they hold
    at any resolution.
    """
    rng = np.random.default_rng(seed)
    f32 = np.float32
    return {
        "label": rng.integers(0, len(SHAPE_CLASSES), n),
        "cx": rng.uniform(0.32, 0.68, n).astype(f32),
        "cy": rng.uniform(0.32, 0.68, n).astype(f32),
        "radius": rng.uniform(0.17, 0.30, n).astype(f32),
        "angle": rng.uniform(0.0, 2 * np.pi, n).astype(f32),
        # shape colour: saturated and bright
        "fg_hsv": np.stack(
            [rng.uniform(0, 1, n), rng.uniform(0.65, 1.0, n), rng.uniform(0.8, 1.0, n)], axis=1
        ).astype(f32),
        # background: two muted, darker colours with related hues
        "bg_hsv1": np.stack(
            [rng.uniform(0, 1, n), rng.uniform(0.2, 0.7, n), rng.uniform(0.08, 0.45, n)], axis=1
        ).astype(f32),
        "bg_hue_shift": rng.uniform(-0.25, 0.25, n).astype(f32),
        "bg_val2": rng.uniform(0.08, 0.45, n).astype(f32),
        "gradient_angle": rng.uniform(0.0, 2 * np.pi, n).astype(f32),
    }


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    """(n, 3) HSV in [0, 1] -> (n, 3) RGB in [0, 1]."""
    h, s, v = hsv[:, 0] % 1.0, hsv[:, 1], hsv[:, 2]
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack(
        [np.stack(c, axis=1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
    )  # (6, n, 3)
    return table[i, np.arange(len(i))]


def _signed_distance(kind: int, dx: np.ndarray, dy: np.ndarray, radius: np.ndarray, angle: np.ndarray):
    """Signed distance (unit coordinates, negative inside) of pixels to one shape kind.

    dx, dy: (n, S, S) offsets from the shape centre; radius, angle: (n, 1, 1).
    """
    cos, sin = np.cos(angle), np.sin(angle)
    qx, qy = dx * cos + dy * sin, -dx * sin + dy * cos  # shape-local coordinates
    name = SHAPE_CLASSES[kind]
    if name == "circle":
        return np.hypot(dx, dy) - radius
    if name == "square":
        return np.maximum(np.abs(qx), np.abs(qy)) - 0.8 * radius
    if name == "triangle":  # equilateral, circumradius 1.25 r: three half-planes
        d = None
        for k in range(3):
            a = np.pi / 2 + k * 2 * np.pi / 3
            side = qx * np.cos(a) + qy * np.sin(a)
            d = side if d is None else np.maximum(d, side)
        return d - 0.625 * radius
    if name == "ring":
        return np.abs(np.hypot(dx, dy) - 0.72 * radius) - 0.28 * radius
    if name == "cross":
        ax, ay, arm, half = np.abs(qx), np.abs(qy), radius, 0.3 * radius
        return np.minimum(np.maximum(ax - arm, ay - half), np.maximum(ax - half, ay - arm))
    raise ValueError(kind)


def _col(a: np.ndarray) -> np.ndarray:
    """(m,) -> (m, 1, 1), to broadcast one value per image over its pixels."""
    return a[:, None, None]


def render_shapes(params: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Render the scenes in ``params`` at ``size x size``: returns (n, size, size, 3) uint8."""
    n = len(params["label"])
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    u = (np.arange(size, dtype=np.float32) + 0.5) / size
    gy, gx = np.meshgrid(u, u, indexing="ij")  # (S, S) pixel centres
    chunk = max(1, _CHUNK_PIXELS // (size * size))
    for start in range(0, n, chunk):
        sl = slice(start, min(n, start + chunk))
        p = {k: v[sl] for k, v in params.items()}
        m = len(p["label"])

        # background: linear gradient between two colours along a random direction
        ga = p["gradient_angle"]
        t = (gx[None] - 0.5) * _col(np.cos(ga)) + (gy[None] - 0.5) * _col(np.sin(ga))  # (m, S, S)
        t = np.clip(t * (0.5 / 0.7071) + 0.5, 0.0, 1.0)[..., None]  # (m, S, S, 1) in 0..1
        hsv2 = p["bg_hsv1"].copy()
        hsv2[:, 0] += p["bg_hue_shift"]
        hsv2[:, 2] = p["bg_val2"]
        c1, c2 = _hsv_to_rgb(p["bg_hsv1"]), _hsv_to_rgb(hsv2)  # (m, 3)
        image = (c2 - c1)[:, None, None] * t  # (m, S, S, 3)
        image += c1[:, None, None]

        # shape coverage: one pixel of antialiasing around the edge
        dx, dy = gx[None] - _col(p["cx"]), gy[None] - _col(p["cy"])  # (m, S, S)
        coverage = np.empty((m, size, size, 1), dtype=np.float32)
        for kind in range(len(SHAPE_CLASSES)):
            idx = np.nonzero(p["label"] == kind)[0]
            if len(idx):
                d = _signed_distance(kind, dx[idx], dy[idx], _col(p["radius"][idx]), _col(p["angle"][idx]))
                coverage[idx, ..., 0] = np.clip(0.5 - d * size, 0.0, 1.0)
        fg = _hsv_to_rgb(p["fg_hsv"])[:, None, None]  # (m, 1, 1, 3)
        # image = background * (1 - coverage) + fg * coverage, in place
        delta = fg - image
        delta *= coverage
        image += delta
        image *= 255.0
        np.rint(image, out=image)
        out[sl] = image
    return out


def make_shapes(
    count: int = DEFAULT_COUNT, size: int = NATIVE_SIZE, seed: int = DEFAULT_SEED, total: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The ``builtin:shapes`` images: ``(count, size, size, 3)`` uint8 and ``(count,)`` int64 labels.

    ``total`` is the size of the whole data set the parameters are drawn for (default:
    ``max(count, DEFAULT_COUNT)``), so the first ``count`` images are the same whatever
    ``count`` is.
    """
    total = max(count, DEFAULT_COUNT) if total is None else total
    params = {k: v[:count] for k, v in shape_parameters(total, seed).items()}
    return render_shapes(params, size), params["label"].astype(np.int64)
