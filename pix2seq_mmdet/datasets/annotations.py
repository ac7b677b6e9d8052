"""Reading and checking COCO detection annotation files before mmdet parses them (plain Python, no mmdet inside).

mmdet's ``CocoDataset`` reports a malformed file with a bare ``JSONDecodeError`` or ``KeyError`` and silently drops
annotations it cannot use (unknown category, degenerate or outside box, NaN coordinates), and pycocotools silently
keeps only the last of two images sharing an id.  The rules here:

* a problem of the file as a whole is an error naming the file, the field and the value: invalid JSON, a missing
  ``images`` / ``categories`` section (or ``annotations`` for training), an image without ``id``, ``file_name``,
  ``width`` or ``height``, a non-positive image size, duplicate image, category or annotation ids, an annotation
  without ``id``;
* a problem of one annotation skips that annotation with one warning per kind of problem, giving the count and the
  first examples (annotation id, image file, bbox): unknown ``image_id`` or ``category_id``, a bbox that is not
  four finite numbers (NaN, inf), a width or height below one pixel (mmdet's own limit), a box less than one pixel
  of which lies inside its image;
* a box partly outside its image is clipped to the image (one warning with the count);
* crowd objects (``iscrowd``) and images without annotations are kept: mmdet marks crowd boxes as ignored (the
  sequence augmentation drops them) and ``filter_cfg.filter_empty_gt`` decides about empty images.
"""
import json
import math
import warnings
from collections import defaultdict
from typing import Dict, List, Sequence

IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
EXAMPLES_PER_WARNING = 3
CLIPPED = 'clipped'


def read_coco_file(path: str, name: str) -> dict:
    """Parse the JSON file at ``path`` (reported as ``name``) into a dict."""
    try:
        with open(path, encoding='utf-8') as file:
            data = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f'annotation file {name} is not valid JSON: {error.msg} at line {error.lineno}, column '
                         f'{error.colno}; the file is damaged or truncated: regenerate or re-download it') from None
    except UnicodeDecodeError as error:
        raise ValueError(f'annotation file {name} is not UTF-8 text ({error.reason} at byte {error.start}): it is '
                         'not a COCO JSON file') from None
    if not isinstance(data, dict):
        raise ValueError(f'annotation file {name} holds a JSON {type(data).__name__}; a COCO file is an object with '
                         '"images", "annotations" and "categories" lists')
    return data


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_sections(data: dict, name: str, require_annotations: bool) -> None:
    required = ('images', 'annotations', 'categories') if require_annotations else ('images', 'categories')
    missing = [key for key in required if key not in data]
    if missing:
        raise ValueError(f'annotation file {name} has no {", ".join(missing)} section (top-level keys: '
                         f'{sorted(data)}); a COCO detection file needs "images", "annotations" and "categories" '
                         'lists (an empty list is fine)')
    for key in ('images', 'annotations', 'categories'):
        if key in data and not isinstance(data[key], list):
            raise ValueError(f'annotation file {name}: "{key}" must be a list, got {type(data[key]).__name__}')


def _index_images(images: List[dict], name: str) -> Dict[int, dict]:
    by_id: Dict[int, dict] = {}
    for position, image in enumerate(images):
        missing = [key for key in IMAGE_KEYS if not isinstance(image, dict) or key not in image]
        if missing:
            raise ValueError(f'annotation file {name}: images[{position}] lacks {", ".join(missing)}; every image '
                             f'needs {", ".join(IMAGE_KEYS)}')
        for key in ('width', 'height'):
            value = image[key]
            if not _is_number(value) or not value > 0:
                raise ValueError(f'annotation file {name}: image id {image["id"]} ({image["file_name"]}) has '
                                 f'{key} {value!r}; it must be a positive number of pixels')
        if image['id'] in by_id:
            raise ValueError(f'annotation file {name}: image id {image["id"]} is used by both '
                             f'{by_id[image["id"]]["file_name"]} and {image["file_name"]}; image ids must be unique')
        by_id[image['id']] = image
    return by_id


def _category_ids(categories: List[dict], name: str) -> set:
    ids: set = set()
    for position, category in enumerate(categories):
        if not isinstance(category, dict) or 'id' not in category or 'name' not in category:
            raise ValueError(f'annotation file {name}: categories[{position}] must have an "id" and a "name", got '
                             f'{category!r}')
        if category['id'] in ids:
            raise ValueError(f'annotation file {name}: category id {category["id"]} appears twice; category ids '
                             'must be unique')
        ids.add(category['id'])
    return ids


def _annotation_problem(annotation: dict, images: Dict[int, dict], category_ids: set) -> str:
    """Why ``annotation`` cannot be used, :data:`CLIPPED` when its box was clipped to its image (in place), or ''."""
    if annotation.get('image_id') not in images:
        return 'an image_id that is not in "images"'
    if annotation.get('category_id') not in category_ids:
        return 'a category_id that is not in "categories"'
    bbox = annotation.get('bbox')
    if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(
            _is_number(value) and math.isfinite(value) for value in bbox):
        return 'a bbox that is not four finite numbers [x, y, width, height]'
    x, y, width, height = bbox
    if width < 1 or height < 1:
        return 'a bbox width or height below 1 pixel'
    image = images[annotation['image_id']]
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + width, image['width']), min(y + height, image['height'])
    if right - left < 1 or bottom - top < 1:
        return 'a bbox with less than 1 pixel inside its image'
    if [left, top, right - left, bottom - top] != list(bbox):
        annotation['bbox'] = [left, top, right - left, bottom - top]
        return CLIPPED
    return ''


def _warn(name: str, what: str, annotations: List[dict], images: Dict[int, dict]) -> None:
    examples = ', '.join(
        f'id {annotation["id"]} (image {images.get(annotation.get("image_id"), {}).get("file_name", "?")}, '
        f'bbox {annotation.get("bbox")})' for annotation in annotations[:EXAMPLES_PER_WARNING])
    more = ', ...' if len(annotations) > EXAMPLES_PER_WARNING else ''
    warnings.warn(f'annotation file {name}: {what}, e.g. {examples}{more}')


def check_coco_annotations(data: dict, name: str, require_annotations: bool = True) -> dict:
    """Check a parsed COCO file (see the module docstring) and return it without the unusable annotations.

    Args:
        data (dict): The parsed file; boxes partly outside their image are clipped in place.
        name (str): How to name the file in messages.
        require_annotations (bool): Whether an ``annotations`` section is required (training); test files such
            as COCO test-dev have none.
    """
    _check_sections(data, name, require_annotations)
    images = _index_images(data['images'], name)
    category_ids = _category_ids(data['categories'], name)
    kept, problems, seen_ids = [], defaultdict(list), set()
    for position, annotation in enumerate(data.get('annotations', [])):
        if not isinstance(annotation, dict) or 'id' not in annotation:
            raise ValueError(f'annotation file {name}: annotations[{position}] has no "id": {annotation!r}')
        if annotation['id'] in seen_ids:
            raise ValueError(f'annotation file {name}: annotation id {annotation["id"]} appears twice; annotation '
                             'ids must be unique')
        seen_ids.add(annotation['id'])
        problem = _annotation_problem(annotation, images, category_ids)
        if problem in ('', CLIPPED):
            kept.append(annotation)
        if problem:
            problems[problem].append(annotation)
    for problem, annotations in problems.items():
        what = (f'clipped {len(annotations)} box(es) partly outside their image to the image' if problem == CLIPPED
                else f'skipped {len(annotations)} annotation(s) with {problem}')
        _warn(name, what, annotations, images)
    if 'annotations' in data:
        data['annotations'] = kept
    return data


def check_classes_are_categories(classes: Sequence[str], categories: List[dict], name: str) -> None:
    """Every class of the dataset's metainfo must name a category of the file.

    mmdet maps labels through the categories whose names are in ``metainfo.classes``; a class without a category
    silently shifts the labels of the others and leaves that class without any annotation.
    """
    names = [category['name'] for category in categories]
    missing = [cls for cls in classes if cls not in names]
    if missing:
        raise ValueError(f'annotation file {name}: the dataset classes {missing} are not category names of the file '
                         f'(its categories: {names[:20]}{" ..." if len(names) > 20 else ""}); set the dataset\'s '
                         'metainfo.classes to category names of the file')
