"""Do Grad-CAM heatmaps point at the evidence? The occlusion check on real test images.

    python bench/gradcam_faithfulness.py                      # flagship, first 100 slice images
    python bench/gradcam_faithfulness.py --images 500 models/seed_cnn

Removes the 20% of pixels each image's Grad-CAM ranks highest, and as baselines as many pixels
in random CAM-shaped blobs and scattered at random, and reports the mean drop of the predicted
class's probability, with removed pixels inpainted from their neighbours (ROAD's remedy, the
default) and greyed out (`occlusion_check` below; tests/test_gradcam.py asserts the orderings).
"""

import argparse

import cv2
import keras
import numpy as np

import cifar_cnn  # noqa: F401  (oneDNN on before TensorFlow loads)
from cifar_cnn.classifier import CifarClassifier
from cifar_cnn.data.cifar10 import REPO_ROOT, load_slice
from cifar_cnn.explain.gradcam import grad_cam_for


def occlusion_check(
    model: keras.Model,
    images: np.ndarray,
    fraction: float = 0.2,
    layer: str | None = None,
    seed: int = 0,
    fill: str = "inpaint",
) -> dict[str, float]:
    """A faithfulness check: remove the `fraction` of pixels the Grad-CAM ranks highest and
    measure the drop in the predicted class's probability, against two random baselines with the
    same number of pixels: random blobs (the top pixels of a random smooth map, shaped like a CAM)
    and scattered random pixels. A CAM that points at the evidence makes its drop the largest.

    `fill` says how a removed pixel is replaced:

    - "inpaint" (default): filled in from the pixels around it (OpenCV's Telea inpainting), the
      remedy of ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for
      Attribution Methods", ICML 2022): a pixel that can be guessed from its neighbours carried
      no information of its own, and the filled image stays like a natural one.
    - "mean": the CIFAR-10 mean colour. Scattered grey pixels then act as heavy noise all over
      the image, damage of another kind than removing evidence, which punishes the scattered
      baseline for its shape rather than for what it removed.

    Returns mean drops over `images` (uint8, N x 32 x 32 x 3).
    """
    if fill not in ("inpaint", "mean"):
        raise ValueError(f"unknown fill {fill!r}; choose inpaint or mean")
    results = grad_cam_for(model, layer).explain(images)
    classes = np.array([r.class_index for r in results])
    before = np.array([r.probabilities[r.class_index] for r in results])
    grey = np.array([125, 123, 114], np.uint8)  # the CIFAR-10 mean colour
    rng = np.random.default_rng(seed)
    height, width = images.shape[1:3]
    pixels = height * width
    count = int(round(fraction * pixels))

    def occlude(choose) -> np.ndarray:
        occluded = images.copy()
        for i, (image, result) in enumerate(zip(images, results, strict=True)):
            removed = choose(result)
            if fill == "mean":
                occluded[i].reshape(pixels, 3)[removed] = grey
            else:
                mask = np.zeros(pixels, np.uint8)
                mask[removed] = 255
                occluded[i] = cv2.inpaint(
                    np.ascontiguousarray(image), mask.reshape(height, width), 3, cv2.INPAINT_TELEA
                )
        return occluded

    def top(heatmap):
        return np.argsort(heatmap.ravel())[::-1][:count]

    def random_blob(_):
        coarse = rng.random((4, 4)).astype(np.float32)
        return top(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_LINEAR))

    def drop(batch) -> float:
        probabilities = keras.ops.convert_to_numpy(model(batch, training=False))
        return float(np.mean(before - probabilities[np.arange(len(batch)), classes]))

    return {
        "cam_drop": drop(occlude(lambda r: top(r.heatmap))),
        "random_blob_drop": drop(occlude(random_blob)),
        "random_pixels_drop": drop(occlude(lambda _: rng.choice(pixels, count, replace=False))),
        "fraction": fraction,
        "fill": fill,
        "images": len(images),
    }


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
