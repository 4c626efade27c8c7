"""Do Grad-CAM heatmaps point at the evidence? The occlusion check on real test images.

    python bench/gradcam_faithfulness.py                      # flagship, first 100 slice images
    python bench/gradcam_faithfulness.py --images 500 models/seed_cnn

Removes the 20% of pixels each image's Grad-CAM ranks highest, and as baselines as many pixels
in random CAM-shaped blobs and scattered at random, and reports the mean drop of the predicted
class's probability, with removed pixels inpainted from their neighbours (ROAD's remedy, the
default) and greyed out. See `cifar_cnn.gradcam.occlusion_check`.
"""

import argparse

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data import REPO_ROOT, load_slice
from cifar_cnn.gradcam import occlusion_check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default=str(REPO_ROOT / "models" / "resnet_fast"))
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--fraction", type=float, default=0.2)
    args = parser.parse_args()
    classifier = CifarClassifier.from_pretrained(args.model)
    images = load_slice().x_test[: args.images]
    print(
        "| removed pixels filled by | Grad-CAM top 20% | random blobs | scattered random pixels |"
    )
    print("|---|---:|---:|---:|")
    for fill in ("inpaint", "mean"):
        r = occlusion_check(classifier.model, images, args.fraction, fill=fill)
        print(
            f"| {fill} | {r['cam_drop']:.3f} | {r['random_blob_drop']:.3f} "
            f"| {r['random_pixels_drop']:.3f} |"
        )


if __name__ == "__main__":
    main()
