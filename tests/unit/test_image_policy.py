"""A picture becomes a bundle's input by the policy its manifest records: the demo models' is MNIST's own
preparation (grey, light background inverted, the digit fitted in 20 x 20 and centred by mass in 28 x 28), which
reads photographed digits that a plain resize misreads; a bundle without a resizing policy refuses another size in
one line that says what it takes and how to convert."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.benchlib.photo_digits import draw_digit, write_set
from restnet_compile._util.images import DEFAULT_POLICY, ImagePolicy, image_to_array, read_image
from restnet_compile.bundle.manifest import ImageInfo, InputSpec
from restnet_compile.config.build import BuildConfig
from restnet_compile.data import load_dataset
from restnet_compile.errors import BadInputError
from restnet_compile.models import create_model
from restnet_compile.models.demo import DEMO_IMAGE_POLICY
from restnet_compile.pipeline.load import image_policy
from restnet_compile.runtime.inputs import load_image

SHAPE = (1, 28, 28)


def _mass_centre(x: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0 : x.shape[0], 0 : x.shape[1]]
    return float((x * ys).sum() / x.sum()), float((x * xs).sum() / x.sum())


def test_a_photo_becomes_an_mnist_digit() -> None:
    x = image_to_array(draw_digit(7, seed=3, pen=True), SHAPE, DEMO_IMAGE_POLICY)[0]
    assert x.shape == (28, 28) and x.dtype == np.float32
    rows, cols = np.nonzero(x > 0.05)
    assert 18 <= max(rows.ptp(), cols.ptp()) + 1 <= 21  # fitted in 20 x 20 (anti-aliased edges)
    cy, cx = _mass_centre(x)
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1  # centred by mass
    assert x.max() > 0.9 and np.median(x[x > 0]) > 0.3  # light strokes...
    corners = np.concatenate([x[:3, :3].ravel(), x[:3, -3:].ravel(), x[-3:, :3].ravel(), x[-3:, -3:].ravel()])
    assert corners.max() < 0.05 and (x > 0.05).mean() < 0.4  # ...on black, the paper's shade and lighting gone


def test_mnist_digits_keep_their_labels_through_the_policy() -> None:
    ds = load_dataset("mnist5k", SHAPE)
    picks = range(len(ds) - 200, len(ds))
    digits = np.stack([np.asarray(ds.images[i]) for i in picks]).astype(np.float32)
    labels = np.array([int(ds.labels[i]) for i in picks])
    pngs = [Image.fromarray(np.round(d[0] * 255).astype(np.uint8), mode="L") for d in digits]
    prepared = np.stack([image_to_array(p, SHAPE, DEMO_IMAGE_POLICY) for p in pngs])  # dark background: kept
    model = create_model("demo-large-cnn").eval()
    with torch.no_grad():
        direct = (model(torch.from_numpy(digits)).argmax(1).numpy() == labels).mean()
        through = (model(torch.from_numpy(prepared)).argmax(1).numpy() == labels).mean()
    assert through >= direct - 0.01, (through, direct)


def test_light_background_is_inverted_only_when_asked() -> None:
    paper = Image.new("L", (60, 40), 230)
    assert image_to_array(paper, SHAPE, ImagePolicy(invert="light-background")).max() < 0.15
    assert image_to_array(paper, SHAPE, DEFAULT_POLICY).min() > 0.85


def test_a_blank_picture_is_all_background() -> None:
    assert not image_to_array(Image.new("RGB", (300, 200), (220, 220, 210)), SHAPE, DEMO_IMAGE_POLICY).any()


def test_rgb_models_get_the_fitted_colour_object() -> None:
    x = image_to_array(
        draw_digit(3, seed=1, pen=False), (3, 32, 32), ImagePolicy(invert="light-background", fit_object=24)
    )
    assert x.shape == (3, 32, 32) and x[:, :2].max() < 0.05 and x.max() > 0.5


def test_the_demo_models_read_drawn_photos_only_through_the_policy(tmp_path: Path) -> None:
    pairs = write_set(tmp_path, per_digit=2, seed=0)
    labels = np.array([d for _, d in pairs])
    model = create_model("demo-large-cnn").eval()

    def correct(policy: ImagePolicy) -> int:
        x = torch.from_numpy(np.stack([read_image(p, SHAPE, policy) for p, _ in pairs]))
        with torch.no_grad():
            return int((model(x).argmax(1).numpy() == labels).sum())

    prepared, plain = correct(DEMO_IMAGE_POLICY), correct(DEFAULT_POLICY)
    print(f"drawn photos read right: {prepared}/20 with the MNIST policy, {plain}/20 resized plainly")
    assert prepared >= 16 and plain <= 8


def test_the_build_records_the_demo_models_policy_unless_the_config_gives_one() -> None:
    assert image_policy(BuildConfig()) == DEMO_IMAGE_POLICY
    own = BuildConfig.model_validate({"large_preprocess": {"resize": 32, "crop": 28}})
    assert image_policy(own) == ImagePolicy(resize=32, crop=28)
    mean_only = BuildConfig.model_validate({"large_preprocess": {"mean": [0.1], "std": [0.3]}})
    assert image_policy(mean_only) == DEMO_IMAGE_POLICY  # normalisation alone keeps the model's image policy
    off = BuildConfig.model_validate({"large_preprocess": {"invert": "never"}})
    assert image_policy(off) == DEFAULT_POLICY
    user = BuildConfig.model_validate({"large": "resnet18", "small": "resnet18"})
    assert image_policy(user) == DEFAULT_POLICY


def _spec(image: ImageInfo | None) -> InputSpec:
    return InputSpec(layout="NHWC", shape=SHAPE, range=(0.0, 1.0), dtype="float32", image=image)


def test_run_input_applies_the_recorded_policy(tmp_path: Path) -> None:
    photo = tmp_path / "seven.jpg"
    draw_digit(7, seed=5, pen=True).save(photo, quality=85)
    info = ImageInfo(resize=None, crop=None, interpolation="bilinear", invert="light-background", fit_object=20)
    x = load_image(photo, _spec(info))
    np.testing.assert_array_equal(x, read_image(photo, SHAPE, DEMO_IMAGE_POLICY))


@pytest.mark.parametrize("image", [None, ImageInfo(resize=None, crop=None, interpolation="bilinear")])
def test_another_size_without_a_policy_says_what_the_bundle_takes_and_how_to_convert(
    tmp_path: Path, image: ImageInfo | None
) -> None:
    photo = tmp_path / "photo.jpg"
    draw_digit(7, seed=5, pen=True).save(photo)
    with pytest.raises(BadInputError) as info:
        load_image(photo, _spec(image))
    msg = str(info.value)
    assert "\n" not in msg
    assert "is 3x200x300 (CxHxW); the bundle takes 1x28x28 (grey, pixels in [0, 1])" in msg
    assert "convert the picture first, e.g. PIL.Image.open(f).convert('L').resize((28, 28))" in msg


def test_a_picture_of_the_input_size_needs_no_policy(tmp_path: Path) -> None:
    png = tmp_path / "rgb.png"
    Image.new("RGB", (28, 28), (255, 0, 0)).save(png)
    x = load_image(png, _spec(None))
    assert x.shape == SHAPE and abs(float(x.mean()) - 76 / 255) < 0.01  # converted to grey as PIL does
