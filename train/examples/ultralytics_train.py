"""Ultralytics' YOLOv8n trained from scratch the way `bench_train` trains ours: the anchor it
prints beside its own figures (run by `bench_train` when ULTRALYTICS_PYTHON names a Python with
the `ultralytics` wheel, which `cargo xtask bench-train` installs; the studio never needs Python).

usage: ultralytics_train.py DATA_DIR EPOCHS BATCH IMGSZ TRAIN_IMAGES THREADS [DEVICE]

Same images (the first TRAIN_IMAGES of the train split in name order, the whole val and test
splits), same epochs, batch, size, `close_mosaic` and thread count, on DEVICE (`cpu`, the
default, or a CUDA index such as `0`; full precision either way, as ours trains). Prints one
`EPOCH` line per epoch and a `RESULT` line in bench_train's format: training images/s (training
only, as ours counts them), seconds to val mAP50 0.5 and 0.9 (wall clock from the start,
validation included, as ours), and the best weights' test mAP50.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")  # nothing may be downloaded

import torch  # noqa: E402
from ultralytics import YOLO  # noqa: E402


def subset(root: Path, limit: int, into: Path) -> Path:
    """A data set of links: the first `limit` train images, every val and test image, labels."""
    for split, keep in (("train", limit), ("val", None), ("test", None)):
        images = sorted((root / "images" / split).iterdir())[:keep]
        for kind in ("images", "labels"):
            (into / kind / split).mkdir(parents=True)
        for image in images:
            (into / "images" / split / image.name).symlink_to(image)
            label = root / "labels" / split / (image.stem + ".txt")
            if label.exists():
                (into / "labels" / split / label.name).symlink_to(label)
    names = (root / "data.yaml").read_text().split("names:", 1)[1]
    yaml = into / "data.yaml"
    yaml.write_text(f"path: {into}\ntrain: images/train\nval: images/val\ntest: images/test\nnames:{names}")
    return yaml


def main() -> None:
    root, epochs, batch, imgsz, limit, threads = sys.argv[1:7]
    device = sys.argv[7] if len(sys.argv) > 7 else "cpu"
    epochs, batch, imgsz, limit, threads = int(epochs), int(batch), int(imgsz), int(limit), int(threads)
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        data = subset(Path(root).resolve(), limit, work / "data")
        images = len(list((work / "data" / "images" / "train").iterdir()))
        started = time.perf_counter()
        train_seconds = [0.0]
        epoch_started = [0.0]
        reached = {0.5: None, 0.9: None}

        def on_train_epoch_start(_trainer):
            epoch_started[0] = time.perf_counter()

        def on_train_epoch_end(_trainer):
            train_seconds[0] += time.perf_counter() - epoch_started[0]

        def on_fit_epoch_end(trainer):
            if trainer.epoch + 1 > epochs:
                return  # the final evaluation of best.pt runs this callback once more
            elapsed = time.perf_counter() - started
            map50 = float(trainer.metrics.get("metrics/mAP50(B)", 0.0))
            for level in reached:
                if reached[level] is None and map50 >= level:
                    reached[level] = elapsed
            print(f"EPOCH {trainer.epoch + 1}/{epochs} mAP50 {map50:.4f} {elapsed:.0f}s", flush=True)

        model = YOLO("yolov8n.yaml")
        model.add_callback("on_train_epoch_start", on_train_epoch_start)
        model.add_callback("on_train_epoch_end", on_train_epoch_end)
        model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
        model.train(
            data=str(data),
            epochs=epochs,
            batch=batch,
            imgsz=imgsz,
            close_mosaic=min(10, epochs // 3),
            device=device,
            workers=threads,
            seed=0,
            amp=False,
            plots=False,
            project=str(work / "runs"),
            name="bench",
            verbose=False,
        )
        seconds = time.perf_counter() - started
        best = YOLO(str(model.trainer.best))
        test = best.val(data=str(data), split="test", imgsz=imgsz, batch=batch, device=device, plots=False, verbose=False)
        show = lambda t: "never" if t is None else f"{t:.0f}"  # noqa: E731
        print(
            f"RESULT images_per_second={epochs * images / max(train_seconds[0], 1e-9):.2f} "
            f"seconds={seconds:.0f} test_map50={test.box.map50:.4f} "
            f"to_map50_0.5={show(reached[0.5])} to_map50_0.9={show(reached[0.9])}",
            flush=True,
        )


if __name__ == "__main__":
    main()
