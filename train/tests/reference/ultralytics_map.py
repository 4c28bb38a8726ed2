"""Reference numbers for `train` (AP, precision and recall, the confusion matrix), computed by Ultralytics' own code.

A one-off run, kept with its output (`table.rs`, read by `../matches_ultralytics.rs`) so the Rust test compares with
numbers that do not come from the code under test. It executes Ultralytics' functions
unchanged — `compute_ap`, `ap_per_class`, `smooth`, `ConfusionMatrix.process_batch`
(ultralytics/utils/metrics.py) and `BaseValidator.match_predictions`
(ultralytics/engine/validator.py) — taken from the package's wheel with `ast`, so only numpy is
needed (torch is not: those bodies only touch numpy, and the few torch calls in them are given
numpy stand-ins). `box_iou` is torch code, so
its formula is written out here exactly as Ultralytics writes it (eps 1e-7 in the union).

    pip download ultralytics==8.4.190 --no-deps -d /tmp/ul
    pip install numpy
    python3 ultralytics_map.py /tmp/ul/ultralytics-8.4.190-py3-none-any.whl > table.rs
"""

import ast
import sys
import zipfile

import numpy as np

WHEEL = sys.argv[1]


def functions(path, names, cls=None):
    """Source of the named top-level functions (or methods of `cls`) of a file in the wheel."""
    with zipfile.ZipFile(WHEEL) as wheel:
        tree = ast.parse(wheel.read(path).decode())
    scope = tree.body
    if cls:
        scope = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls).body
    found = [n for n in scope if isinstance(n, ast.FunctionDef) and n.name in names]
    assert len(found) == len(names), (path, names, [n.name for n in found])
    for node in found:
        node.decorator_list = []
    return ast.unparse(ast.Module(body=found, type_ignores=[]))


class Tensor(np.ndarray):
    """numpy array answering the torch methods `match_predictions` and
    `ConfusionMatrix.process_batch` call."""

    def cpu(self):
        return self

    def numpy(self):
        return np.asarray(self)

    def int(self):
        return self.astype(np.int64).view(Tensor)


class torch:  # noqa: N801 - stands in for the module inside match_predictions
    Tensor = Tensor
    from_numpy = staticmethod(lambda a: a)


namespace = {"np": np, "torch": torch, "Path": __import__("pathlib").Path}
namespace["_AP_X"] = np.linspace(0, 1, 101)
namespace["_TRAPZ"] = np.trapezoid if hasattr(np, "trapezoid") else np.trapz
exec("from __future__ import annotations\n" + functions(
    "ultralytics/utils/metrics.py", ["compute_ap", "ap_per_class", "smooth"]), namespace)
exec("from __future__ import annotations\n" + functions(
    "ultralytics/engine/validator.py", ["match_predictions"], cls="BaseValidator"), namespace)
exec("from __future__ import annotations\n" + functions(
    "ultralytics/utils/metrics.py", ["process_batch", "_append_matches"], cls="ConfusionMatrix"), namespace)


class Validator:
    iouv = np.linspace(0.5, 0.95, 10, dtype=np.float32).view(Tensor)  # torch.linspace(0.5, 0.95, 10)


def box_iou(box1, box2, eps=1e-7):
    """ultralytics.utils.metrics.box_iou, in numpy (float32 like the tensors it gets)."""
    (a1, a2), (b1, b2) = np.split(box1[:, None], 2, 2), np.split(box2[None], 2, 2)
    inter = np.clip(np.minimum(a2, b2) - np.maximum(a1, b1), 0, None).prod(2)
    return (inter / ((a2 - a1).prod(2) + (b2 - b1).prod(2) - inter + eps)).view(Tensor)


namespace["box_iou"] = box_iou
CLASS_COUNT = 5


class Confusion:
    """The state `ConfusionMatrix.process_batch` works on (its __init__ only sets these)."""

    def __init__(self):
        self.nc, self.task, self.matches = CLASS_COUNT, "detect", None
        self.matrix = np.zeros((CLASS_COUNT + 1, CLASS_COUNT + 1))

    process_batch = namespace["process_batch"]
    _append_matches = namespace["_append_matches"]


# The fixed case (classes 0..4): (image, class, x0, y0, x1, y1) truths; (image, class, score, x0, y0, x1, y1)
# predictions. Partial recall, duplicates, a wrong class, a class with truths and no prediction
# (class 3), a prediction of a class with no truth (class 4), overlaps spread over 0.5..0.95, and
# no IoU within 1e-3 of a threshold.
TRUTH = [
    (0, 0, 10, 10, 50, 50), (0, 0, 60, 10, 100, 50), (0, 1, 10, 60, 40, 100),
    (1, 0, 0, 0, 30, 30), (1, 1, 40, 40, 80, 90), (1, 1, 100, 100, 140, 130),
    (2, 2, 5, 5, 25, 45), (2, 0, 50, 50, 90, 70), (2, 3, 0, 80, 20, 100),
    (3, 1, 10, 10, 60, 60), (3, 2, 70, 10, 110, 40),
]
PREDICTIONS = [
    (0, 0, 0.95, 11, 10, 50, 51), (0, 0, 0.90, 62, 12, 100, 50), (0, 0, 0.40, 12, 12, 52, 52),
    (0, 1, 0.85, 12, 64, 40, 97), (0, 2, 0.30, 10, 60, 40, 100),
    (1, 0, 0.80, 3, 2, 33, 32), (1, 1, 0.75, 45, 48, 80, 92), (1, 1, 0.20, 100, 100, 125, 118),
    (1, 1, 0.60, 0, 0, 20, 20),
    (2, 2, 0.88, 7, 9, 25, 43), (2, 0, 0.55, 55, 52, 94, 72), (2, 0, 0.45, 50, 50, 71, 70),
    (2, 4, 0.70, 0, 80, 20, 100),
    (3, 1, 0.92, 20, 20, 60, 60), (3, 2, 0.65, 71, 11, 109, 39), (3, 2, 0.50, 70, 12, 112, 42),
]

tps, confs, classes = [], [], []
confusion = Confusion()
for image in sorted({t[0] for t in TRUTH} | {p[0] for p in PREDICTIONS}):
    truth = np.array([t[1:] for t in TRUTH if t[0] == image], dtype=np.float32).reshape(-1, 5)
    preds = sorted((p[1:] for p in PREDICTIONS if p[0] == image), key=lambda p: -p[1])
    preds = np.array(preds, dtype=np.float32).reshape(-1, 6)
    iou = box_iou(truth[:, 1:], preds[:, 2:])
    for row in iou:
        assert all(abs(v - t) > 1e-3 for v in row for t in Validator.iouv if v > 0), row
    tp = namespace["match_predictions"](Validator(), preds[:, 0].view(Tensor), truth[:, 0].view(Tensor),
                                        iou.view(Tensor))
    tps.append(np.asarray(tp)), confs.append(preds[:, 1]), classes.append(preds[:, 0])
    detections = {"cls": preds[:, 0].view(Tensor), "conf": preds[:, 1].view(Tensor), "bboxes": preds[:, 2:].view(Tensor)}
    confusion.process_batch(detections, {"cls": truth[:, 0].view(Tensor), "bboxes": truth[:, 1:].view(Tensor)},
                            conf=0.25, iou_thres=0.45)
target_cls = np.array([t[1] for t in TRUTH], dtype=np.float32)
result = namespace["ap_per_class"](np.concatenate(tps), np.concatenate(confs), np.concatenate(classes), target_cls)
precision, recall, ap, unique_classes = result[2], result[3], result[5], result[6]

print("//! What Ultralytics 8.4.190's own `match_predictions`, `ap_per_class` and `ConfusionMatrix`")
print("//! compute for one fixed case — generated by `reference/ultralytics_map.py` (see there how), not by")
print("//! this project.")
print("//! `train` must reproduce every number to 1e-6 (the confusion matrix exactly).")
print()
print("/// (image, class, x0, y0, x1, y1)")
print(f"pub const TRUTH: [(usize, usize, f32, f32, f32, f32); {len(TRUTH)}] = [")
for t in TRUTH:
    print("    ({}, {}, {:.1f}, {:.1f}, {:.1f}, {:.1f}),".format(*t))
print("];")
print("/// (image, class, score, x0, y0, x1, y1)")
print(f"pub const PREDICTIONS: [(usize, usize, f32, f32, f32, f32, f32); {len(PREDICTIONS)}] = [")
for p in PREDICTIONS:
    print("    ({}, {}, {:.2f}, {:.1f}, {:.1f}, {:.1f}, {:.1f}),".format(*p))
print("];")
print("/// Per class with truths: (class, AP at IoU 0.50, 0.55, …, 0.95).")
print(f"pub const AP: [(usize, [f64; 10]); {len(unique_classes)}] = [")
for c, row in zip(unique_classes, ap):
    print(f"    ({c}, [" + ", ".join(f"{v:.12f}" for v in row) + "]),")
print("];")
print("/// Per class with truths: (class, precision, recall) at the confidence of the best mean F1.")
print(f"pub const PRECISION_RECALL: [(usize, f64, f64); {len(unique_classes)}] = [")
for c, p, r in zip(unique_classes, precision, recall):
    print(f"    ({c}, {p:.12f}, {r:.12f}),")
print("];")
print(f"/// `ConfusionMatrix.process_batch(conf=0.25, iou_thres=0.45)` over the images, [predicted][true],")
print(f"/// background last.")
print(f"pub const CONFUSION: [[u32; {CLASS_COUNT + 1}]; {CLASS_COUNT + 1}] = [")
for row in confusion.matrix:
    print("    [" + ", ".join(str(int(v)) for v in row) + "],")
print("];")
print(f"pub const MAP50: f64 = {ap[:, 0].mean():.12f};")
print(f"pub const MAP50_95: f64 = {ap.mean():.12f};")
