"""cifar-predict: classify a folder of pictures, or a video, into CSV or JSON.

    cifar-predict models/resnet_fast examples/                      # CSV on stdout
    cifar-predict models/resnet_fast photos/ a.jpg --output labels.json
    cifar-predict models/ensemble clip.mp4 --every 5 --output clip.csv

One row per picture (file, label, confidence, out_of_distribution, each class's probability) or
per sampled video frame (frame, time, ...). A picture that cannot be decoded gets a row with its
error and the rest go on; a video that cannot be decoded is an error. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

#: Files in a folder that are classified: what Pillow decodes for the app as well.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
#: Inputs treated as videos (a GIF counts as a picture unless --video is given).
VIDEO_SUFFIXES = {".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v"}


def image_files(inputs: list[Path]) -> list[Path]:
    """The pictures named: files as given, folders' pictures sorted by name (not recursive)."""
    files = []
    for path in inputs:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path}: no such file or folder")
    if not files:
        raise ValueError(f"no pictures in {', '.join(map(str, inputs))}")
    return files


def predict_images(model: Any, files: list[Path], progress: bool = True) -> list[dict[str, Any]]:
    """One row per file, in order; undecodable files get an `error` and no label."""
    import numpy as np
    from tqdm import tqdm

    from cifar_cnn.data.images import to_model_input
    from cifar_cnn.trust.ood import predict_and_flag
    from cifar_cnn.video import BATCH_SIZE, answer_row

    rows: list[dict[str, Any]] = []
    with tqdm(total=len(files), unit="image", disable=not progress, file=sys.stderr) as bar:
        for start in range(0, len(files), BATCH_SIZE):
            chunk, views = files[start : start + BATCH_SIZE], []
            for file in chunk:
                try:
                    views.append(to_model_input(file)[0][0])
                except ValueError as error:
                    views.append(str(error))
            decoded = [v for v in views if not isinstance(v, str)]
            answers = predict_and_flag(model, np.stack(decoded)) if decoded else ([], [])
            results = iter(zip(*answers, strict=True))
            for file, view in zip(chunk, views, strict=True):
                if isinstance(view, str):
                    rows.append({"file": str(file), "error": view})
                    continue
                probabilities, flagged = next(results)
                row = answer_row(tuple(model.class_names), probabilities, flagged)
                rows.append({"file": str(file), **row, "error": ""})
            bar.update(len(chunk))
    return rows


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=1) + "\n"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def build_predict_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifar-predict",
        description="Classify pictures (files or folders) or a video into CSV or JSON.",
    )
    parser.add_argument(
        "model",
        help="model or ensemble: a folder, Hub repo id (owner/name[@revision]) or registry name",
    )
    parser.add_argument("inputs", nargs="+", type=Path, help="pictures, folders, or one video")
    parser.add_argument("--video", action="store_true", help="treat the input as a video (GIF)")
    parser.add_argument("--every", type=int, default=1, help="videos: classify every Nth frame")
    parser.add_argument(
        "--max-frames", type=int, help="videos: refuse more sampled frames (default 5000)"
    )
    parser.add_argument("--output", type=Path, help=".csv or .json file (default: CSV on stdout)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def predict_main(argv: list[str] | None = None) -> None:
    args = build_predict_parser().parse_args(argv)
    fmt = "json" if args.output and args.output.suffix.lower() == ".json" else "csv"
    if args.output and args.output.suffix.lower() not in (".csv", ".json"):
        sys.exit(f"cifar-predict: error: --output {args.output}: expected a .csv or .json file")
    video = args.video or any(p.suffix.lower() in VIDEO_SUFFIXES for p in args.inputs)
    try:
        if video and len(args.inputs) != 1:
            raise ValueError("give one video at a time")
        # Heavy imports after the arguments are known good: `--help` and usage errors stay fast.
        from cifar_cnn.atomic import atomic_write_text
        from cifar_cnn.ensemble import load_pretrained

        model = load_pretrained(args.model)
        if video:
            limits = {} if args.max_frames is None else {"max_frames": args.max_frames}
            rows = model.classify_video(args.inputs[0], args.every, **limits).rows()
        else:
            rows = predict_images(model, image_files(args.inputs), progress=not args.quiet)
    except (ValueError, OSError) as error:
        sys.exit(f"cifar-predict: error: {error}")
    text = render(rows, fmt)
    if args.output is None:
        sys.stdout.write(text)
        return
    atomic_write_text(args.output, text)
    failed = sum(1 for row in rows if row.get("error"))
    print(
        f"Wrote {len(rows)} rows to {args.output}"
        + (f" ({failed} could not be decoded)" if failed else ""),
        file=sys.stderr,
    )


if __name__ == "__main__":
    predict_main()
