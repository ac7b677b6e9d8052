"""The synthetic COCO-format detection dataset of coloured shapes: presets, drawing and COCO writing
(``tools/generate_synthetic.py`` is its command line).

Layout written under ``out_dir``::

    annotations/instances_train.json
    annotations/instances_val.json
    train/000000.png ...
    val/000000.png ...

Every image of the ``easy`` and ``hard`` presets is ``img_size`` x ``img_size`` (BGR PNG); the ``varied`` preset
draws each image's own size.  Images hold filled, anti-aliased shapes of four classes (``CLASSES``) on a varied
background.  Each annotation's bbox is the tight pixel box ``[x, y, w, h]`` of the whole
shape (pixels it covers at least half, including any part hidden by a shape drawn later), clipped to the image;
``area`` is its pixel count, ``segmentation`` its outline polygon clipped to the image and ``keypoints`` the four
points of its outline straight above, right of, below and left of its centre (:data:`KEYPOINT_NAMES`; every shape is
star-shaped about its centre, so each ray meets the outline once; COCO's ``x, y, v`` with ``v`` 2 visible, 1 hidden
by a later shape, 0 outside the image; each category lists their names and skeleton).

Presets:

* ``easy``: 0-4 objects per image (about 7% empty), shapes 20%-60% of the image, fully inside it, solid / gradient /
  lightly noisy backgrounds, at most 30% of any shape's pixels hidden by later shapes.
* ``hard``: 0-12 objects (log-uniform sizes 6%-50% of the image, so small ones are common), shapes may be cut by the
  image border, background clutter strokes that are not objects, stronger noise, up to 50% of a shape hidden.
* ``varied``: every image has its own size (short side 160-320 px, long/short ratio log-uniform in 1-2, landscape or
  portrait), 1-6 objects (about 5% empty images) with log-uniform diameters 8%-60% of the short side, cut by the
  border by at most 20% of their radius, up to 40% hidden, a few clutter strokes (0-4), image noise sigma 0-10, and a
  fourth background kind, a gradient with stronger noise.  The COCO ``images`` entries carry each image's size.

The output is deterministic for a given seed; train and val use independent streams derived from it (adding
``varied`` changed no draw of ``easy`` or ``hard``).  The generation parameters are stored in each annotation file's
``info`` field: :func:`generate_dataset` leaves both files alone when they exist with the requested parameters (and
their images are present), unless ``force``.
"""
import json
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Dict, Optional

import cv2
import numpy as np

CLASSES = ('circle', 'square', 'triangle', 'star')
SPLITS = ('train', 'val')
# Bumped whenever the drawing code changes, so stale datasets are regenerated instead of silently reused.
GENERATOR_VERSION = 4
# Placement attempts per object before giving up on it (the image then holds fewer objects).
MAX_PLACEMENT_TRIES = 30
# A placed shape must cover at least this many pixels inside the image.
MIN_OBJECT_PIXELS = 12
# Sub-pixel precision (bits) used for cv2 drawing coordinates.
DRAW_SHIFT = 4
# Shapes are filled on a grid this many times finer than the image, then area-averaged (anti-aliasing).
SUPERSAMPLING = 4
# Corners of the regular polygon drawn as a circle, and a star's inner to outer radius ratio.
CIRCLE_VERTICES = 48
STAR_INNER_RATIO = 0.45
# The named keypoints of every shape (the points of its outline straight above, right of, below and left of its centre),
# the skeleton joining them (COCO's 1-based pairs) and the keypoint each one becomes under a horizontal flip.
KEYPOINT_DIRECTIONS = ((0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0))  # x, y (down) of top, right, bottom, left
KEYPOINT_NAMES = ('top', 'right', 'bottom', 'left')
KEYPOINT_SKELETON = [[1, 2], [2, 3], [3, 4], [4, 1]]
KEYPOINT_FLIP_INDICES = (0, 3, 2, 1)


@dataclass(frozen=True)
class Preset:
    """Knobs of one difficulty preset.

    Sizes are fractions of the image's (short) side and measure the diameter of the shape's circumscribed circle.
    The fields with defaults were added after ``easy`` and ``hard``: left at their defaults they change no random draw
    and are left out of the annotation files' ``info``, so those presets' output stays byte-for-byte the same.
    """

    max_objects: int
    empty_prob: float
    size_range: tuple
    log_uniform_size: bool
    max_truncation: float  # fraction of the circumradius that may leave the image
    max_occlusion: float  # fraction of an object's pixels later objects may hide
    min_contrast: float  # mean absolute BGR difference between a shape's colour and what lies under it
    background_noise_amplitude: float  # amplitude of the low-frequency noise of 'noise' backgrounds
    image_noise_sigma_range: tuple  # per-pixel Gaussian noise added to the finished image
    distractor_range: tuple  # number of clutter strokes drawn behind the objects (inclusive)
    num_train: int
    num_val: int
    short_side_range: tuple = None  # per-image short side in px (inclusive); None: square ``img_size`` images
    aspect_range: tuple = (1.0, 1.0)  # long / short side, log-uniform; the orientation is random when not square
    noisy_gradient_background: bool = False  # also draw 'noisy_gradient' backgrounds (a gradient with strong noise)


PRESETS = {
    'easy': Preset(max_objects=4, empty_prob=0.07, size_range=(0.2, 0.6), log_uniform_size=False,
                   max_truncation=0.0, max_occlusion=0.3, min_contrast=70.0, background_noise_amplitude=25.0,
                   image_noise_sigma_range=(0.0, 3.0), distractor_range=(0, 0), num_train=2000, num_val=200),
    'hard': Preset(max_objects=12, empty_prob=0.05, size_range=(0.06, 0.5), log_uniform_size=True,
                   max_truncation=0.4, max_occlusion=0.5, min_contrast=45.0, background_noise_amplitude=50.0,
                   image_noise_sigma_range=(5.0, 20.0), distractor_range=(3, 10), num_train=2000, num_val=200),
    'varied': Preset(max_objects=6, empty_prob=0.05, size_range=(0.08, 0.6), log_uniform_size=True,
                     max_truncation=0.2, max_occlusion=0.4, min_contrast=55.0, background_noise_amplitude=35.0,
                     image_noise_sigma_range=(0.0, 10.0), distractor_range=(0, 4), num_train=2000, num_val=200,
                     short_side_range=(160, 320), aspect_range=(1.0, 2.0), noisy_gradient_background=True),
}
# The 'noisy_gradient' background's noise: this many times the preset's background_noise_amplitude, on a finer grid.
NOISY_GRADIENT_AMPLITUDE_FACTOR = 1.5


def preset_settings(preset):
    """The preset's fields for the annotation files' ``info``, without the later-added fields left at their default."""
    settings = asdict(preset)
    for field in fields(preset):
        if field.default is not MISSING and settings[field.name] == field.default:
            del settings[field.name]
    return settings


def sample_image_size(rng, preset, img_size):
    """Return ``(height, width)`` of the next image: ``img_size`` square, or drawn from the preset's size ranges."""
    if preset.short_side_range is None:
        return img_size, img_size
    short_side = int(rng.integers(preset.short_side_range[0], preset.short_side_range[1] + 1))
    low, high = preset.aspect_range
    aspect = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    long_side = max(short_side, int(round(short_side * aspect)))
    return (long_side, short_side) if rng.random() < 0.5 else (short_side, long_side)


def random_colour(rng):
    """Return a random BGR colour as a float32 array."""
    return rng.uniform(0, 255, size=3).astype(np.float32)


def smooth_noise(rng, height, width, grid_range):
    """Return low-frequency Gaussian noise (float32, ``height`` x ``width`` x 3): a coarse grid, cubic-upsampled."""
    grid_size = int(rng.integers(*grid_range))
    coarse = rng.normal(0, 1, size=(grid_size, grid_size, 3)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def draw_background(rng, height, width, preset):
    """Return a float32 BGR background: a solid colour, a linear gradient, a colour with smooth noise or (presets
    with ``noisy_gradient_background``) a gradient with stronger, finer smooth noise."""
    kinds = ('solid', 'gradient', 'noise') + (('noisy_gradient', ) if preset.noisy_gradient_background else ())
    kind = rng.choice(kinds)
    canvas = np.empty((height, width, 3), np.float32)
    canvas[:] = random_colour(rng)
    if kind in ('gradient', 'noisy_gradient'):
        angle = rng.uniform(0, 2 * np.pi)
        xs, ys = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
        projection = np.cos(angle) * xs[None, :] + np.sin(angle) * ys[:, None]
        weight = (projection - projection.min()) / (projection.max() - projection.min())
        canvas = canvas * (1 - weight[..., None]) + random_colour(rng) * weight[..., None]
        if kind == 'noisy_gradient':
            amplitude = NOISY_GRADIENT_AMPLITUDE_FACTOR * preset.background_noise_amplitude
            canvas += amplitude * smooth_noise(rng, height, width, (6, 13))
    elif kind == 'noise':
        canvas += preset.background_noise_amplitude * smooth_noise(rng, height, width, (3, 9))
    return canvas


def draw_distractors(rng, canvas, num_strokes):
    """Draw open strokes (lines, polylines, arcs) that are clutter, not objects, onto ``canvas`` in place.

    Points are drawn per axis (x below the width, y below the height); on a square canvas the draws equal those of a
    single scalar bound.
    """
    height, width = canvas.shape[:2]
    extent = np.array([width, height])
    for _ in range(num_strokes):
        colour = tuple(float(c) for c in random_colour(rng))
        thickness = int(rng.integers(1, 3))
        kind = rng.choice(('line', 'polyline', 'arc'))
        if kind == 'line':
            start, end = rng.integers(0, extent, size=(2, 2))
            cv2.line(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), colour, thickness,
                     cv2.LINE_AA)
        elif kind == 'polyline':
            points = rng.integers(0, extent, size=(int(rng.integers(3, 6)), 2)).astype(np.int32)
            cv2.polylines(canvas, [points], False, colour, thickness, cv2.LINE_AA)
        else:
            centre = tuple(int(v) for v in rng.integers(0, extent, size=2))
            axes = tuple(int(v) for v in rng.integers(extent // 10, extent // 2, size=2))
            start_angle = float(rng.uniform(0, 360))
            sweep = float(rng.uniform(60, 240))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), start_angle, start_angle + sweep, colour,
                        thickness, cv2.LINE_AA)


def shape_outline(category, centre, radius, rotation):
    """Return the outline (N x 2 float, pixel-centre coordinates) of a shape with the given circumradius.

    Circles are regular polygons with ``CIRCLE_VERTICES`` corners (less than 0.1 px from the true circle at these
    sizes), so every shape is drawn and annotated from the same polygon.
    """
    if category == 'star':
        angles = rotation + np.arange(10) * np.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, radius, STAR_INNER_RATIO * radius)
    else:
        num_corners = {'circle': CIRCLE_VERTICES, 'square': 4, 'triangle': 3}[category]
        angles = rotation + np.arange(num_corners) * 2 * np.pi / num_corners
        radii = np.full(num_corners, radius)
    return np.stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=1)


def rasterise(outline, height, width):
    """Return the fraction of each pixel of a ``height`` x ``width`` image covered by the filled polygon ``outline``
    (float32, image-clipped).

    The polygon is filled at ``SUPERSAMPLING`` times the resolution and area-averaged, which gives anti-aliased
    edges and avoids the half-pixel dilation of a direct ``cv2.fillPoly``.
    """
    fine_outline = (outline + 0.5) * SUPERSAMPLING - 0.5  # pixel-centre coordinates of the fine grid
    fine_mask = np.zeros((height * SUPERSAMPLING, width * SUPERSAMPLING), np.uint8)
    cv2.fillPoly(fine_mask, [np.round(fine_outline * (1 << DRAW_SHIFT)).astype(np.int32)], 1, cv2.LINE_8,
                 DRAW_SHIFT)
    return cv2.resize(fine_mask.astype(np.float32), (width, height), interpolation=cv2.INTER_AREA)


def clip_to_half_plane(vertices, axis, bound, keep_below):
    """Keep the part of a polygon where coordinate ``axis`` is <= ``bound`` (``keep_below``) or >= ``bound``."""
    def inside(point):
        return point[axis] <= bound if keep_below else point[axis] >= bound

    clipped = []
    for current, following in zip(vertices, np.roll(vertices, -1, axis=0)):
        if inside(current):
            clipped.append(current)
        if inside(current) != inside(following):
            fraction = (bound - current[axis]) / (following[axis] - current[axis])
            clipped.append(current + fraction * (following - current))
    return np.array(clipped).reshape(-1, 2)


def clip_polygon(vertices, height, width):
    """Clip a polygon (x, y vertices) to ``[0, width] x [0, height]`` (Sutherland-Hodgman); return the vertices."""
    for axis, bound in ((0, width), (1, height)):
        vertices = clip_to_half_plane(vertices, axis, 0.0, keep_below=False)
        vertices = clip_to_half_plane(vertices, axis, float(bound), keep_below=True)
    return vertices


def sample_radius(rng, short_side, preset):
    """Sample a circumradius in pixels from the preset's size range (fractions of the image's short side)."""
    low, high = preset.size_range
    if preset.log_uniform_size:
        diameter_frac = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    else:
        diameter_frac = float(rng.uniform(low, high))
    return diameter_frac * short_side / 2


def pick_fill_colour(rng, canvas, mask, min_contrast):
    """Return a colour that stands out from the pixels under ``mask``, falling back to their complement."""
    underlying = canvas[mask].mean(axis=0)
    for _ in range(10):
        colour = random_colour(rng)
        if np.abs(colour - underlying).mean() >= min_contrast:
            return colour
    return 255 - np.clip(underlying, 0, 255)


def annotate(mask, outline):
    """Return the COCO ``bbox``, ``area`` and ``segmentation`` of one shape.

    ``bbox`` ([x, y, w, h] floats) is the tight box of the shape's pixels (``mask``: at least half covered) and
    ``area`` their count; ``segmentation`` is the outline clipped to the image, in COCO coordinates (pixel ``i``
    spans ``[i, i + 1)``).
    """
    ys, xs = np.nonzero(mask)
    x_min, y_min = int(xs.min()), int(ys.min())
    width, height = int(xs.max()) - x_min + 1, int(ys.max()) - y_min + 1
    polygon = outline + 0.5
    img_height, img_width = mask.shape
    if not np.all((polygon >= 0) & (polygon <= (img_width, img_height))):
        polygon = clip_polygon(polygon, img_height, img_width)
    return dict(bbox=[float(x_min), float(y_min), float(width), float(height)], area=float(mask.sum()),
                segmentation=[[round(float(v), 2) for v in polygon.reshape(-1)]])


def compass_points(outline, centre):
    """(N, 2) outline and its (2,) centre (pixel-centre ``x, y``) -> (4, 2) the outline's points straight above,
    right of, below and left of the centre (:data:`KEYPOINT_DIRECTIONS`), in COCO coordinates: where each ray from the
    centre leaves the outline (the farthest crossing), a continuous function of the shape's position and rotation."""
    start, edge = outline, np.roll(outline, -1, axis=0) - outline
    points = []
    for direction in np.asarray(KEYPOINT_DIRECTIONS):
        # centre + t * direction = start + u * edge, t > 0 and 0 <= u <= 1, solved for every edge at once
        offset = start - centre
        denominator = direction[0] * edge[:, 1] - direction[1] * edge[:, 0]
        with np.errstate(divide='ignore', invalid='ignore'):
            t = (offset[:, 0] * edge[:, 1] - offset[:, 1] * edge[:, 0]) / denominator
            u = (offset[:, 0] * direction[1] - offset[:, 1] * direction[0]) / denominator
        hits = (denominator != 0) & (t > 0) & (u >= 0) & (u <= 1)
        points.append(centre + t[hits].max() * direction)
    return np.array(points) + 0.5


def annotate_keypoints(shapes, height, width):
    """COCO ``keypoints`` (flat ``x, y, v`` of :data:`KEYPOINT_NAMES`) and ``num_keypoints`` of every shape
    ``(outline, centre)`` of one image, drawn in the order of ``shapes``: a point outside the image is not labelled
    (``0, 0, 0``), one inside a shape drawn later is labelled but hidden (``v = 1``), the others are visible
    (``v = 2``)."""
    outlines = [outline for outline, _ in shapes]
    annotations = []
    for index, (outline, centre) in enumerate(shapes):
        keypoints = []
        for x, y in compass_points(outline, centre):
            if not (0 <= x <= width and 0 <= y <= height):
                keypoints += [0.0, 0.0, 0]
                continue
            hidden = any(cv2.pointPolygonTest((later + 0.5).astype(np.float32), (float(x), float(y)), False) > 0
                         for later in outlines[index + 1:])
            keypoints += [round(float(x), 2), round(float(y), 2), 1 if hidden else 2]
        annotations.append(dict(keypoints=keypoints, num_keypoints=sum(v > 0 for v in keypoints[2::3])))
    return annotations


def generate_image(rng, img_size, preset):
    """Draw one image; return the uint8 BGR image and its objects (``category_id``, ``bbox``, ``area``, ...).

    ``img_size`` is the side of the square image, unused by presets that draw each image's size
    (``short_side_range``).
    """
    height, width = sample_image_size(rng, preset, img_size)
    extent = np.array([width, height])
    canvas = draw_background(rng, height, width, preset)
    draw_distractors(rng, canvas, int(rng.integers(preset.distractor_range[0], preset.distractor_range[1] + 1)))
    num_objects = 0 if rng.random() < preset.empty_prob else int(rng.integers(1, preset.max_objects + 1))

    owner = np.full((height, width), -1, np.int32)  # index of the object visible at each pixel, -1 if none
    visible_pixels, full_pixels, objects, shapes = [], [], [], []
    for _ in range(num_objects):
        category_index = int(rng.integers(len(CLASSES)))
        for _ in range(MAX_PLACEMENT_TRIES):
            radius = sample_radius(rng, min(height, width), preset)
            margin = radius * (1 - preset.max_truncation)
            centre = rng.uniform(margin, extent - margin, size=2)
            outline = shape_outline(CLASSES[category_index], centre, radius, rng.uniform(0, 2 * np.pi))
            coverage = rasterise(outline, height, width)
            mask = coverage >= 0.5
            if mask.sum() < MIN_OBJECT_PIXELS:
                continue
            hidden = np.bincount(owner[mask & (owner >= 0)], minlength=len(objects))
            remaining = np.array(visible_pixels) - hidden
            if np.all(remaining >= (1 - preset.max_occlusion) * np.array(full_pixels)):
                break
        else:  # no acceptable placement: the image gets one object fewer
            continue
        colour = pick_fill_colour(rng, canvas, mask, preset.min_contrast)
        canvas += coverage[..., None] * (colour - canvas)
        owner[mask] = len(objects)
        visible_pixels = list(remaining) + [int(mask.sum())]
        full_pixels.append(int(mask.sum()))
        objects.append(dict(category_id=category_index + 1, **annotate(mask, outline)))
        shapes.append((outline, centre))
    for obj, keypoints in zip(objects, annotate_keypoints(shapes, height, width)):
        obj.update(keypoints)

    canvas += rng.normal(0, rng.uniform(*preset.image_noise_sigma_range), size=canvas.shape).astype(np.float32)
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8), objects


def generation_params(preset_name, split, num_images, img_size, seed):
    """Return the parameters stored in ``info`` that identify one split's content (``img_size`` None: per-image
    sizes drawn by the preset)."""
    return dict(preset=preset_name, split=split, num_images=num_images, img_size=img_size, seed=seed,
                generator_version=GENERATOR_VERSION)


def is_up_to_date(ann_file, image_dir, params):
    """Whether ``ann_file`` exists, was generated with ``params`` and all its images exist."""
    if not ann_file.is_file():
        return False
    try:
        coco = json.loads(ann_file.read_text())
    except json.JSONDecodeError:
        return False
    if coco.get('info', {}).get('generation_params') != params:
        return False
    return all((image_dir / image['file_name']).is_file() for image in coco['images'])


def generate_split(out_dir, split, params, preset, seed_sequence):
    """Write one split's images and annotation file; return the COCO dict."""
    image_dir = out_dir / split
    image_dir.mkdir(parents=True, exist_ok=True)
    for stale_image in image_dir.glob('*.png'):
        stale_image.unlink()
    rng = np.random.default_rng(seed_sequence)
    images, annotations = [], []
    for image_index in range(params['num_images']):
        image, objects = generate_image(rng, params['img_size'], preset)
        file_name = f'{image_index:06d}.png'
        if not cv2.imwrite(str(image_dir / file_name), image):
            raise OSError(f'could not write {image_dir / file_name}')
        image_id = image_index + 1
        images.append(dict(id=image_id, file_name=file_name, width=image.shape[1], height=image.shape[0]))
        for obj in objects:
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, iscrowd=0, **obj))
    coco = dict(
        info=dict(description=f'pix2seq-mmdet synthetic shapes ({params["preset"]}, {split})', version='1.0',
                  generation_params=params, preset_settings=preset_settings(preset)),
        licenses=[],
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape', keypoints=list(KEYPOINT_NAMES),
                         skeleton=KEYPOINT_SKELETON) for i, name in enumerate(CLASSES)],
    )
    ann_file = out_dir / 'annotations' / f'instances_{split}.json'
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    # Written last and atomically: a present annotation file means its images are complete.
    tmp_file = ann_file.with_suffix('.json.tmp')
    tmp_file.write_text(json.dumps(coco))
    tmp_file.replace(ann_file)
    return coco


def generate_dataset(out_dir: Path, preset_name: str, num_train: int, num_val: int, img_size: Optional[int],
                     seed: int, force: bool = False) -> Optional[Dict[str, dict]]:
    """Write the dataset of ``preset_name`` under ``out_dir``; return each split's COCO dict, or None when both
    splits are already there with these parameters (and not ``force``).

    ``img_size`` is the side of the square images, None for presets that draw each image's size
    (``short_side_range``).
    """
    preset = PRESETS[preset_name]
    split_sizes = dict(train=num_train, val=num_val)
    params = {split: generation_params(preset_name, split, split_sizes[split], img_size, seed) for split in SPLITS}
    if not force and all(is_up_to_date(out_dir / 'annotations' / f'instances_{split}.json', out_dir / split,
                                       params[split]) for split in SPLITS):
        return None
    seed_sequences = dict(zip(SPLITS, np.random.SeedSequence(seed).spawn(len(SPLITS))))
    return {split: generate_split(out_dir, split, params[split], preset, seed_sequences[split]) for split in SPLITS}
