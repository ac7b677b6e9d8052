"""Pix2Seq vocabulary and box/class tokenizer (pure torch, no mmdet inside).

Every object becomes five tokens ``[ymin, xmin, ymax, xmax, class]``.  Coordinates are normalised to the padded
input image, quantised with ``round(v * (num_bins - 1))`` and clipped to ``[0, num_bins - 1]``.

Two vocabulary layouts (``layout``), ids derived from the configuration, never hard-coded elsewhere.

``compact`` (default)::

    0                          PAD       padding after the end of a sequence (weight 0 in the loss)
    1                          EOS       end of the object list
    2                          BOS       the detection task prompt, first input token
    3                          FAKE      the "noise" class of sequence augmentation
    4 .. 4 + C - 1             classes   real class ``c`` (0-based, mmdet label) is token ``4 + c``
    4 + C .. 4 + C + B - 1     coords    bin ``b`` is token ``4 + C + b``

``official``, the layout of the released TF checkpoints (google-research/pix2seq ``vocab.py`` and
``configs/config_det_finetune.py``), 3000 tokens whatever the number of classes and bins::

    0                          PAD = EOS the official end token is PAD: trained with ``eos_weight`` wherever it is
                                         the target (every trailing PAD), as the official ``preprocess_batched``
    10                         BOS       the object-detection task prompt (``vocab_id``)
    30                         FAKE      ``FAKE_CLASS_TOKEN``
    100 + class_ids[c]         classes   mmdet label ``c`` -> official class id (COCO: the original category ids
                                         1..90 of the 80 classes, :data:`COCO_CATEGORY_IDS`; default ``c + 1``)
    1000 + b                   coords    bin ``b`` (``coord_vocab_shift``; the official models use 1000 bins)

Pix2Seq v2's tasks (``tasks``; "A Unified Sequence Interface for Vision Tasks", Chen et al., NeurIPS 2022) add
a task prompt per task, the polygon ``SEPARATOR`` and the keypoints' ``INVISIBLE`` token.  With only ``detection``
(the default) the vocabulary is the one above, unchanged.  Otherwise the compact layout appends four ids after the
coordinates, whichever v2 tasks are configured, so adding a task later keeps every id::

    4 + C + B                  instance_segmentation prompt
    4 + C + B + 1              keypoints prompt
    4 + C + B + 2              SEPARATOR  between the parts of one object's polygon
    4 + C + B + 3              INVISIBLE  a keypoint that is not labelled

and the official layout uses ``vocab.py``'s: instance segmentation 11, keypoints 12, SEPARATOR 40, INVISIBLE 41.

An instance task's sequence is ``[task, ymin, xmin, ymax, xmax, class]`` (the prompt, its box and class as the
detection tokens), then the response: for instance segmentation the polygon's ``(y, x)`` points in the same bins,
the parts of one object joined by a ``SEPARATOR`` pair (one in the place of y, one of x, as the official flat
list), truncated to ``max_points_per_object`` points (separator pairs count as points: the official rule), then EOS
and PAD up to ``2 * max_points_per_object + 1`` tokens.  For keypoints the response is the ``num_keypoints`` points'
``(y, x)`` in the same bins, an unlabelled point as an ``INVISIBLE`` pair, ``2 * num_keypoints`` tokens and no EOS (the
official task's fixed-length response).

A polygon's points are normalised to the padded frame, as the boxes (``polygon_frame='image'``, the official task), or
to the prompt's box (``polygon_frame='box'``): ``(0, 0)`` is the box's top-left corner and ``(1, 1)`` its bottom-right
one, the box taken as the prompt's tokens read it (:func:`~pix2seq_mmdet.structures.polygons.points_to_box_frame`).
The same shape then reads the same at every size and place, and every bin spans a fraction of the object rather
than of the image.

The other ids (unused task prompts, unused class ids, 1000 + B .. 2999) are never produced by the tokenizer.

This class is the only place that knows the layout: every other module asks it which ids are classes or
coordinates, which tokens a position may hold, and how pixel boxes map to normalised ``yxyx`` boxes and back.

In the compact layout, unlike the official code (which uses PAD as its end token), EOS and PAD are distinct: the
model learns where the object list stops (EOS, weight ``eos_weight``) while padding after it is ignored.  In both, a
sequence of ``n`` objects is ``5 n`` object tokens, one EOS and PAD up to the fixed length ``5 * max_objects + 1``;
decoding ends a sequence at its first EOS in both layouts (the official decoder never stops early and reads every
slot, which differs only for a sequence that emits PAD before its last slot).
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

OBJECT_ORDERS = ('random', 'area', 'dist2ori', 'none')
TOKENS_PER_OBJECT = 5
LAYOUTS = ('compact', 'official')
# the tasks a tokenizer can be configured for; an instance task's prompt is the task token, a box and a class
TASKS = ('detection', 'instance_segmentation', 'keypoints')
POLYGON_FRAMES = ('image', 'box')
PROMPT_LENGTH = 1 + TOKENS_PER_OBJECT

# the official vocabulary (google-research/pix2seq vocab.py, configs/config_det_finetune.py)
OFFICIAL_PAD = 0
OFFICIAL_DETECTION_PROMPT = 10
OFFICIAL_INSTANCE_SEGMENTATION_PROMPT = 11
OFFICIAL_KEYPOINTS_PROMPT = 12
OFFICIAL_FAKE = 30
OFFICIAL_SEPARATOR = 40
OFFICIAL_INVISIBLE = 41
OFFICIAL_CLASS_SHIFT = 100
OFFICIAL_COORD_SHIFT = 1000
OFFICIAL_VOCAB_SIZE = 3000

# COCO's category ids of its 80 classes, in mmdet's label order (the official checkpoints' class tokens are 100 + id)
COCO_CATEGORY_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
                     31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
                     56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
                     85, 86, 87, 88, 89, 90)


class Pix2SeqTokenizer:
    """Maps normalised boxes and labels to token sequences and back.

    Args:
        num_classes (int): Number of real classes ``C``.
        num_bins (int): Number of coordinate quantisation bins ``B`` (>= 2; at most 2000 in the official layout).
        max_objects (int): Most objects in one sequence; more are truncated (after ordering).
        layout (str): ``'compact'`` (default) or ``'official'`` (the released checkpoints' 3000-token vocabulary,
            for converted official weights); see the module docstring.
        class_ids (Sequence[int] | str, optional): Official layout only: the official class id of each mmdet label
            (``C`` distinct ids in ``[0, 900)``; class token = 100 + id), or ``'coco'`` for
            :data:`COCO_CATEGORY_IDS`.  Default ``1 .. C``.
        tasks (Sequence[str]): The tasks whose sequences the model reads and writes, among :data:`TASKS`;
            ``detection`` first and always (the instance tasks prompt with detected boxes).  Default: detection only.
        max_points_per_object (int): Most polygon points (separator pairs included) of one object's response
            (official: 128); only with ``instance_segmentation``.
        polygon_frame (str): What a polygon's points are normalised to: ``'image'`` (the padded frame, as the
            boxes: the official task) or ``'box'`` (the prompt's box); only with ``instance_segmentation``.
        num_keypoints (int): Keypoints of every object (COCO persons, the official task: 17); only with
            ``keypoints``.
        vocab_size (int, optional): Official layout only: the number of token ids (default 3000, the detection
            checkpoints; the multi-task checkpoints have 35000, their captioning text tokens from 3000 on, which
            this package never writes but keeps in the softmax so that probabilities match the official ones).

    Attributes:
        PAD, EOS, BOS, FAKE (int): Special token ids (``EOS == PAD`` in the official layout).
        SEPARATOR, INVISIBLE (int | None): The v2 tokens (None with detection only).
        task_prompts (dict[str, int]): The prompt token of every configured task (detection's is ``BOS``).
        CLASS_OFFSET (int): Token of class id 0; class token = ``CLASS_OFFSET + class_ids[label]`` (compact:
            ``class_ids[label] == label``).
        coord_offset (int): Token of coordinate bin 0.
        vocab_size (int): Number of token ids, the size of the model's embedding and output layer.
        class_ids (tuple[int]): Class id of every label (compact: ``0 .. C - 1``).
    """

    def __init__(self, num_classes: int, num_bins: int, max_objects: int = 100, layout: str = 'compact',
                 class_ids: Optional[Union[Sequence[int], str]] = None, tasks: Sequence[str] = ('detection', ),
                 max_points_per_object: int = 128, polygon_frame: str = 'image', num_keypoints: int = 17,
                 vocab_size: Optional[int] = None) -> None:
        if int(num_classes) < 1:
            raise ValueError(f'Pix2SeqTokenizer: num_classes must be >= 1, got {num_classes}')
        if int(num_bins) < 2:
            raise ValueError(f'Pix2SeqTokenizer: num_bins must be >= 2, got {num_bins}')
        if int(max_objects) < 1:
            raise ValueError(f'Pix2SeqTokenizer: max_objects must be >= 1, got {max_objects}')
        if layout not in LAYOUTS:
            raise ValueError(f'Pix2SeqTokenizer: layout must be one of {LAYOUTS}, got {layout!r}')
        tasks = (tasks, ) if isinstance(tasks, str) else tuple(tasks)
        unknown = [task for task in tasks if task not in TASKS]
        if unknown or not tasks or tasks[0] != 'detection' or len(set(tasks)) != len(tasks):
            raise ValueError(f'Pix2SeqTokenizer: tasks must be distinct names among {TASKS}, detection first, got '
                             f'{tasks!r}')
        if 'instance_segmentation' in tasks and int(max_points_per_object) < 3:
            raise ValueError(f'Pix2SeqTokenizer: max_points_per_object must be >= 3 (a polygon), got '
                             f'{max_points_per_object}')
        if polygon_frame not in POLYGON_FRAMES:
            raise ValueError(f'Pix2SeqTokenizer: polygon_frame must be one of {POLYGON_FRAMES}, got {polygon_frame!r}')
        if 'keypoints' in tasks and int(num_keypoints) < 1:
            raise ValueError(f'Pix2SeqTokenizer: num_keypoints must be >= 1, got {num_keypoints}')
        self.tasks = tasks
        self.max_points_per_object = int(max_points_per_object)
        self.polygon_frame = polygon_frame
        self.num_keypoints = int(num_keypoints)
        v2 = len(tasks) > 1
        self.num_classes = int(num_classes)
        self.num_bins = int(num_bins)
        self.max_objects = int(max_objects)
        self.layout = layout
        if layout == 'compact':
            if class_ids is not None or vocab_size is not None:
                raise ValueError('Pix2SeqTokenizer: class_ids and vocab_size only apply to layout=\'official\' (the '
                                 'compact layout numbers the classes by their mmdet labels and sizes itself)')
            self.PAD, self.EOS, self.BOS, self.FAKE, self.CLASS_OFFSET = 0, 1, 2, 3, 4
            self.class_ids = tuple(range(self.num_classes))
            self.coord_offset = self.CLASS_OFFSET + self.num_classes
            self.vocab_size = self.coord_offset + self.num_bins
            v2_tokens = dict(instance_segmentation=self.vocab_size, keypoints=self.vocab_size + 1,
                             separator=self.vocab_size + 2, invisible=self.vocab_size + 3)
            if v2:
                self.vocab_size += 4
        else:
            self.PAD = self.EOS = OFFICIAL_PAD
            self.BOS, self.FAKE, self.CLASS_OFFSET = OFFICIAL_DETECTION_PROMPT, OFFICIAL_FAKE, OFFICIAL_CLASS_SHIFT
            self.coord_offset = OFFICIAL_COORD_SHIFT
            self.vocab_size = OFFICIAL_VOCAB_SIZE if vocab_size is None else int(vocab_size)
            if self.vocab_size < OFFICIAL_VOCAB_SIZE:
                raise ValueError(f'Pix2SeqTokenizer: the official layout needs vocab_size >= {OFFICIAL_VOCAB_SIZE} '
                                 f'(coordinates up to {OFFICIAL_VOCAB_SIZE - 1}), got {vocab_size}')
            v2_tokens = dict(instance_segmentation=OFFICIAL_INSTANCE_SEGMENTATION_PROMPT,
                             keypoints=OFFICIAL_KEYPOINTS_PROMPT, separator=OFFICIAL_SEPARATOR,
                             invisible=OFFICIAL_INVISIBLE)
            max_bins = OFFICIAL_VOCAB_SIZE - OFFICIAL_COORD_SHIFT
            if self.num_bins > max_bins:
                raise ValueError(f'Pix2SeqTokenizer: the official layout holds at most {max_bins} coordinate bins '
                                 f'(tokens {OFFICIAL_COORD_SHIFT}..{OFFICIAL_VOCAB_SIZE - 1}), got num_bins='
                                 f'{self.num_bins}')
            if class_ids is None:
                class_ids = range(1, self.num_classes + 1)
            elif isinstance(class_ids, str):
                if class_ids != 'coco':
                    raise ValueError(f'Pix2SeqTokenizer: class_ids must be a sequence of ints or \'coco\', got '
                                     f'{class_ids!r}')
                class_ids = COCO_CATEGORY_IDS
            self.class_ids = tuple(int(class_id) for class_id in class_ids)
            max_id = OFFICIAL_COORD_SHIFT - OFFICIAL_CLASS_SHIFT
            if len(self.class_ids) != self.num_classes:
                raise ValueError(f'Pix2SeqTokenizer: class_ids has {len(self.class_ids)} ids but num_classes is '
                                 f'{self.num_classes}; give one official class id per mmdet label')
            bad = [class_id for class_id in self.class_ids if not 0 <= class_id < max_id]
            if bad:
                raise ValueError(f'Pix2SeqTokenizer: official class ids must be in [0, {max_id}) (class tokens '
                                 f'{OFFICIAL_CLASS_SHIFT}..{OFFICIAL_COORD_SHIFT - 1}), got {bad[:5]}')
            if len(set(self.class_ids)) != len(self.class_ids):
                raise ValueError('Pix2SeqTokenizer: class_ids must be distinct')
        self.task_prompts = {task: self.BOS if task == 'detection' else v2_tokens[task] for task in tasks}
        self.SEPARATOR = v2_tokens['separator'] if v2 else None
        self.INVISIBLE = v2_tokens['invisible'] if v2 else None
        # lookup tables (CPU; copied once per device on use): label -> class token, token -> label (-1 FAKE, -2 none)
        self._class_token_table = torch.tensor([self.CLASS_OFFSET + class_id for class_id in self.class_ids])
        self._label_table = torch.full((self.vocab_size, ), -2, dtype=torch.long)
        self._label_table[self.FAKE] = -1
        self._label_table[self._class_token_table] = torch.arange(self.num_classes)
        self._device_tables = {}

    def _tables(self, device: torch.device) -> Tuple[Tensor, Tensor]:
        """The (C,) class-token and (V,) label lookup tables on ``device``."""
        key = str(device)
        if key not in self._device_tables:
            self._device_tables[key] = (self._class_token_table.to(device), self._label_table.to(device))
        return self._device_tables[key]

    def __repr__(self) -> str:
        tasks = '' if self.tasks == ('detection', ) else f', tasks={self.tasks!r}'
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, num_bins={self.num_bins}, '
                f'max_objects={self.max_objects}, layout={self.layout!r}{tasks})')

    def describe_vocabulary(self) -> str:
        """How the vocabulary is made up, for error messages."""
        if self.layout == 'compact':
            tasks = ' + 4 task tokens' if len(self.tasks) > 1 else ''
            return f'4 special tokens + num_classes {self.num_classes} + num_bins {self.num_bins}{tasks}'
        return (f'the official layout: classes at {self.CLASS_OFFSET} + class id, {self.num_bins} coordinate bins '
                f'from {self.coord_offset}')

    # ----------------------------------------------------------------- vocabulary
    @property
    def seq_len(self) -> int:
        """Fixed length of target and input sequences: every object slot plus one EOS."""
        return TOKENS_PER_OBJECT * self.max_objects + 1

    @property
    def response_len(self) -> int:
        """Fixed length of a polygon response: ``2 * max_points_per_object`` coordinates and one EOS."""
        return 2 * self.max_points_per_object + 1

    @property
    def instance_seq_len(self) -> int:
        """Fixed length of an instance task's input (and target) sequence: the prompt and the response, less one
        (the input is the sequence without its last token, the target without its first)."""
        return PROMPT_LENGTH + self.response_len - 1

    @property
    def keypoints_response_len(self) -> int:
        """Length of a keypoint response: ``(y, x)`` of each of the ``num_keypoints`` points, no EOS."""
        return 2 * self.num_keypoints

    def task_seq_len(self, task: str) -> int:
        """Length of ``task``'s input (and target) sequence: :attr:`seq_len` for detection, an instance task's
        prompt and response less one."""
        self._task_prompt(task)
        if task == 'detection':
            return self.seq_len
        if task == 'keypoints':
            return PROMPT_LENGTH + self.keypoints_response_len - 1
        return self.instance_seq_len

    @property
    def num_positions(self) -> int:
        """Sequence positions the decoder embeds: the longest sequence of the configured tasks."""
        return max(self.task_seq_len(task) for task in self.tasks)

    @property
    def real_classes(self) -> Union[slice, Tensor]:
        """Index of the real class tokens along a vocabulary dimension, in label order: a ``slice`` when they are
        contiguous (the compact layout, or official ids ``k .. k + C - 1``), else a (C,) int64 CPU tensor; either
        indexes logits (``logits[..., real_classes]``) the same way."""
        first = self.CLASS_OFFSET + self.class_ids[0]
        if self.class_ids == tuple(range(self.class_ids[0], self.class_ids[0] + self.num_classes)):
            return slice(first, first + self.num_classes)
        return self._class_token_table.clone()

    @property
    def class_token_space(self) -> slice:
        """Every id the layout reserves for class tokens, used by the dataset's classes or not: ``CLASS_OFFSET ..
        coord_offset - 1`` (official: 100..999, any class id; compact: the ``C`` classes)."""
        return slice(self.CLASS_OFFSET, self.coord_offset)

    def is_coord(self, tokens: Tensor) -> Tensor:
        """Boolean mask of coordinate tokens, same shape as ``tokens`` (ids beyond the bins are not)."""
        return (tokens >= self.coord_offset) & (tokens < self.coord_offset + self.num_bins)

    def _token_labels(self, tokens: Tensor) -> Tensor:
        """Tokens (any shape, any ids) -> labels, -1 for FAKE, -2 for every other token."""
        label_table = self._tables(tokens.device)[1]
        inside = (tokens >= 0) & (tokens < self.vocab_size)
        return torch.where(inside, label_table[tokens.clamp(0, self.vocab_size - 1)], -2)

    def is_class(self, tokens: Tensor) -> Tensor:
        """Boolean mask of class tokens, FAKE (noise) included, same shape as ``tokens``."""
        return self._token_labels(tokens) >= -1

    def labels(self, class_tokens: Tensor) -> Tensor:
        """Class tokens -> 0-based labels, -1 for FAKE (any shape; other tokens give -2, callers keep only
        :meth:`is_class` tokens)."""
        return self._token_labels(class_tokens)

    @property
    def coordinates(self) -> slice:
        """Ids of the coordinate tokens, ``bin + coord_offset`` for bins ``0 .. B - 1``."""
        return slice(self.coord_offset, self.coord_offset + self.num_bins)

    @staticmethod
    def is_class_position(positions: Union[int, Tensor]) -> Union[bool, Tensor]:
        """Whether the sequence positions (an ``int`` or a tensor of any shape, 0-based) hold an object's class
        token."""
        return positions % TOKENS_PER_OBJECT == TOKENS_PER_OBJECT - 1

    def allowed_tokens(self, device: Optional[torch.device] = None) -> Tensor:
        """(5, V) bool: row ``i`` marks the tokens a well-formed sequence may hold at positions ``p % 5 == i``:
        coordinates at the four box positions (and EOS at an object's first position), classes (real or FAKE) at
        the class position."""
        allowed = torch.zeros(TOKENS_PER_OBJECT, self.vocab_size, dtype=torch.bool, device=device)
        allowed[:TOKENS_PER_OBJECT - 1, self.coordinates] = True
        allowed[0, self.EOS] = True
        allowed[TOKENS_PER_OBJECT - 1, self.FAKE] = True
        allowed[TOKENS_PER_OBJECT - 1, self.real_classes] = True
        return allowed

    # ------------------------------------------------------------ normalisation
    @staticmethod
    def normalize_boxes(bboxes_xyxy: Tensor, frame_hw: Sequence[int]) -> Tensor:
        """(N, 4) pixel ``xmin, ymin, xmax, ymax`` -> (N, 4) ``ymin, xmin, ymax, xmax`` in [0, 1] of the
        ``frame_hw`` frame (the padded input), clipped."""
        frame_h, frame_w = frame_hw
        scale = bboxes_xyxy.new_tensor([frame_h, frame_w, frame_h, frame_w])
        return (bboxes_xyxy[:, [1, 0, 3, 2]] / scale).clamp(0, 1)

    @staticmethod
    def denormalize_boxes(boxes_yxyx: Tensor, frame_hw: Sequence[int]) -> Tensor:
        """Inverse of :meth:`normalize_boxes`: (N, 4) normalised ``yxyx`` -> (N, 4) pixel ``xyxy``."""
        frame_h, frame_w = frame_hw
        return boxes_yxyx[:, [1, 0, 3, 2]] * boxes_yxyx.new_tensor([frame_w, frame_h, frame_w, frame_h])

    # -------------------------------------------------------------- quantisation
    def quantize(self, coords: Tensor) -> Tensor:
        """Normalised coordinates in [0, 1] (any shape) -> coordinate token ids (int64)."""
        bins = torch.round(coords.clamp(0, 1) * (self.num_bins - 1)).long()
        return bins + self.coord_offset

    def dequantize(self, tokens: Tensor) -> Tensor:
        """Coordinate token ids (any shape) -> normalised coordinates in [0, 1] (float32).

        Tokens outside the coordinate range are clamped; callers drop them with :meth:`is_coord`.
        """
        return self.bins(tokens).float() / (self.num_bins - 1)

    def bins(self, tokens: Tensor) -> Tensor:
        """Coordinate token ids (any shape) -> bin indices in ``[0, num_bins - 1]`` (clamped)."""
        return (tokens - self.coord_offset).clamp(0, self.num_bins - 1)

    # ------------------------------------------------------------------ ordering
    @staticmethod
    def order_objects(boxes_yxyx: Tensor, order: str = 'random',
                      generator: Optional[torch.Generator] = None) -> Tensor:
        """Permutation of objects for the sequence.

        Args:
            boxes_yxyx (Tensor): (N, 4) normalised ``ymin, xmin, ymax, xmax``.
            order (str): ``random`` (the paper's default), ``area`` (largest first), ``dist2ori`` (nearest
                top-left corner to the origin first, i.e. raster order) or ``none`` (keep as given).
            generator (torch.Generator, optional): Source of randomness for ``random``.

        Returns:
            Tensor: (N,) int64 indices.
        """
        num_objects = boxes_yxyx.shape[0]
        if order == 'random':
            return torch.randperm(num_objects, generator=generator, device=boxes_yxyx.device)
        if order == 'area':
            area = (boxes_yxyx[:, 2] - boxes_yxyx[:, 0]) * (boxes_yxyx[:, 3] - boxes_yxyx[:, 1])
            return torch.argsort(area, descending=True, stable=True)
        if order == 'dist2ori':
            dist = boxes_yxyx[:, 0]**2 + boxes_yxyx[:, 1]**2
            return torch.argsort(dist, stable=True)
        if order == 'none':
            return torch.arange(num_objects, device=boxes_yxyx.device)
        raise ValueError(f'unknown object order {order!r}; expected one of {OBJECT_ORDERS}')

    # ------------------------------------------------------------------ encoding
    def class_tokens(self, labels: Tensor) -> Tensor:
        """0-based labels (N,) -> class token ids (N,); label -1 stands for FAKE (noise)."""
        labels = labels.long()
        class_token_table = self._tables(labels.device)[0]
        return torch.where(labels < 0, self.FAKE, class_token_table[labels.clamp(0, self.num_classes - 1)])

    def encode(self, boxes_yxyx: Tensor, labels: Tensor) -> Tensor:
        """Objects -> fixed-length target sequence.

        Args:
            boxes_yxyx (Tensor): (N, 4) normalised boxes, already ordered; clipped to [0, 1].
            labels (Tensor): (N,) 0-based class labels, -1 for noise (FAKE) objects.

        Returns:
            Tensor: (seq_len,) int64: ``5 n`` object tokens (n = min(N, max_objects)), EOS, then PAD.
        """
        num_objects = min(boxes_yxyx.shape[0], self.max_objects)
        objects = torch.cat([self.quantize(boxes_yxyx[:num_objects]),
                             self.class_tokens(labels[:num_objects])[:, None]], dim=1)
        sequence = torch.full((self.seq_len, ), self.PAD, dtype=torch.long, device=boxes_yxyx.device)
        sequence[:TOKENS_PER_OBJECT * num_objects] = objects.flatten()
        sequence[TOKENS_PER_OBJECT * num_objects] = self.EOS
        return sequence

    # ------------------------------------------------------------------ decoding
    def decode(self, tokens: Tensor, coords: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Token sequences -> candidate objects, one per 5-token slot.

        Args:
            tokens (Tensor): (..., L) token ids; only the first ``5 * (L // 5)`` tokens are read.
            coords (Tensor, optional): (..., L) normalised coordinates read at the coordinate positions (decoding's
                ``coords``, sub-bin with ``coord_window``); default: the tokens' bins (:meth:`dequantize`).

        Returns:
            tuple: ``boxes_yxyx`` (..., K, 4) normalised float, ``class_tokens`` (..., K) int64 and ``valid``
            (..., K) bool, with K = L // 5.  A slot is valid when its four coordinate positions hold coordinate
            tokens, its class position holds a real class or FAKE token, ``ymax > ymin`` and ``xmax > xmin``,
            and no EOS occurred in an earlier slot or inside it.
        """
        num_slots = tokens.shape[-1] // TOKENS_PER_OBJECT
        slots = tokens[..., :num_slots * TOKENS_PER_OBJECT].unflatten(-1, (num_slots, TOKENS_PER_OBJECT))
        coord_tokens, class_tokens = slots[..., :4], slots[..., 4]
        if coords is None:
            boxes = self.dequantize(coord_tokens)
        else:
            boxes = coords[..., :num_slots * TOKENS_PER_OBJECT].unflatten(-1, (num_slots, TOKENS_PER_OBJECT))[..., :4]
        ended = (slots == self.EOS).any(-1).long().cumsum(-1) > 0
        valid = (self.is_coord(coord_tokens).all(-1) & self.is_class(class_tokens) & ~ended
                 & (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1]))
        return boxes, class_tokens, valid

    # ------------------------------------------------------------ instance tasks
    def _task_prompt(self, task: str) -> int:
        if task not in self.task_prompts:
            raise ValueError(f'Pix2SeqTokenizer: task {task!r} is not configured (tasks={self.tasks!r}); add it to '
                             'model.head.tokenizer.tasks')
        return self.task_prompts[task]

    def instance_prompts(self, boxes_yxyx: Tensor, labels: Tensor, task: str = 'instance_segmentation') -> Tensor:
        """(N, 4) normalised boxes and (N,) labels -> (N, 6) prompts ``[task, ymin, xmin, ymax, xmax, class]``."""
        task_tokens = torch.full((boxes_yxyx.shape[0], 1), self._task_prompt(task), dtype=torch.long,
                                 device=boxes_yxyx.device)
        return torch.cat([task_tokens, self.quantize(boxes_yxyx), self.class_tokens(labels)[:, None]], dim=1)

    def prompt_boxes(self, prompts: Tensor) -> Tensor:
        """(N, T) sequences that start with an instance prompt ``[task, ymin, xmin, ymax, xmax, class]`` -> (N, 4) the
        prompts' normalised ``yxyx`` boxes as their tokens read them (:meth:`instance_prompts`, dequantised)."""
        return self.dequantize(prompts[:, 1:PROMPT_LENGTH - 1])

    def encode_polygon(self, parts: Sequence[Tensor]) -> Tensor:
        """One object's polygon -> its response, (response_len,) int64.

        Args:
            parts (Sequence[Tensor]): The object's parts, each (P, 2) normalised ``(y, x)`` points in [0, 1]
                (clipped), in the order to write them.

        Returns:
            Tensor: the parts' quantised points, consecutive parts joined by a ``SEPARATOR`` pair, truncated to
            ``max_points_per_object`` points, then EOS and PAD.
        """
        self._task_prompt('instance_segmentation')
        response = torch.full((self.response_len, ), self.PAD, dtype=torch.long)
        separator = torch.full((2, ), self.SEPARATOR, dtype=torch.long)
        pieces = []
        for part in parts:
            if pieces:
                pieces.append(separator)
            pieces.append(self.quantize(part.detach().cpu().float()).flatten())
        flat = torch.cat(pieces)[:2 * self.max_points_per_object] if pieces else response[:0]
        response[:len(flat)] = flat
        response[len(flat)] = self.EOS
        return response

    def decode_polygon(self, response: Tensor) -> List[Tensor]:
        """A response (L,) -> the object's parts, each (P, 2) normalised ``(y, x)`` float32, read pair by pair up to
        the first EOS: a pair holding a ``SEPARATOR`` starts a new part, a pair that is not two coordinates is
        skipped, and parts of fewer than 3 points (no area) are dropped."""
        self._task_prompt('instance_segmentation')
        response = response.detach().cpu()
        ended = (response == self.EOS).nonzero()
        length = int(ended[0]) if len(ended) else len(response)
        pairs = response[:length - length % 2].view(-1, 2)
        is_point = self.is_coord(pairs).all(-1)
        is_separator = (pairs == self.SEPARATOR).any(-1)
        part_index = is_separator.long().cumsum(0)[is_point]
        points = self.dequantize(pairs[is_point])
        parts = [points[part_index == index] for index in torch.unique_consecutive(part_index).tolist()]
        return [part for part in parts if len(part) >= 3]

    def encode_keypoints(self, points_yx: Tensor, labelled: Tensor) -> Tensor:
        """One object's keypoints -> its response, (keypoints_response_len,) int64.

        Args:
            points_yx (Tensor): (K, 2) normalised ``(y, x)`` in [0, 1] (clipped), K = ``num_keypoints``.
            labelled (Tensor): (K,) bool, False for a point that is not labelled (an ``INVISIBLE`` pair).
        """
        self._task_prompt('keypoints')
        if tuple(points_yx.shape) != (self.num_keypoints, 2) or tuple(labelled.shape) != (self.num_keypoints, ):
            raise ValueError(f'encode_keypoints: expected ({self.num_keypoints}, 2) points and ({self.num_keypoints},) '
                             f'flags, got {tuple(points_yx.shape)} and {tuple(labelled.shape)}')
        tokens = self.quantize(points_yx.detach().cpu().float())
        return torch.where(labelled.cpu()[:, None], tokens, self.INVISIBLE).flatten()

    def decode_keypoints(self, responses: Tensor) -> Tuple[Tensor, Tensor]:
        """Responses (..., 2 K) -> ``points_yx`` (..., K, 2) normalised float32 and ``labelled`` (..., K) bool:
        a point is labelled when both its tokens are coordinates (its ``points_yx`` are then meaningful)."""
        self._task_prompt('keypoints')
        pairs = responses[..., :self.keypoints_response_len].unflatten(-1, (self.num_keypoints, 2))
        return self.dequantize(pairs), self.is_coord(pairs).all(-1)
