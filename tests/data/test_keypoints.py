"""Landmark files (CSV long/wide, JSON) parse into Keypoints; bad files raise KeypointFileError naming the file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facegen.data.keypoints import (
    DEFAULT_TEMPLATE_BOX,
    MULTIPIE_68_REGIONS,
    KeypointFileError,
    Keypoints,
    load_keypoints,
    mean_template,
)
from facegen.errors import FacegenError


def test_json_round_trip_with_regions(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 50, (2, 5, 2)).astype(np.float32)
    kp = Keypoints({"a.png": pts[0], "sub/b.png": pts[1]}, {"eye": [0, 1], "mouth": [2, 3, 4]}, 5)
    path = kp.save_json(tmp_path / "lm.json")
    back = load_keypoints(path)
    assert back.names == ["a.png", "sub/b.png"] and back.num_points == 5
    np.testing.assert_allclose(back["sub/b.png"], pts[1], atol=1e-3)
    assert back.region("mouth").tolist() == [2, 3, 4]
    # looser name matching: base name and stem without an image extension
    np.testing.assert_allclose(back["other/b.png"], pts[1], atol=1e-3)
    np.testing.assert_allclose(back["a"], pts[0], atol=1e-3)
    assert "missing.png" not in back


def test_plain_json_of_68_points_gets_multipie_regions(tmp_path):
    path = tmp_path / "lm.json"
    path.write_text(json.dumps({"x.jpg": np.zeros((68, 2)).tolist()}))
    kp = load_keypoints(path)
    assert kp.region("eyes").tolist() == MULTIPIE_68_REGIONS["eyes"]
    assert kp.region("mouth").tolist() == list(range(48, 68))


def test_csv_long_form_with_region_column(tmp_path):
    path = tmp_path / "lm.csv"
    rows = ["image,point,x,y,region"]
    for image in ("m1.png", "m2.png"):
        for i, region in enumerate(["eye_left", "eye_left", "eye_right", "mouth"]):
            rows.append(f"{image},{i},{10 + i},{20 + i + (image == 'm2.png')},{region}")
    rows.insert(3, rows.pop())  # point order in the file does not matter when point is an index
    path.write_text("\n".join(rows) + "\n")
    kp = load_keypoints(path)
    assert kp.num_points == 4
    np.testing.assert_allclose(kp["m2.png"], [[10, 21], [11, 22], [12, 23], [13, 24]])
    assert kp.region("eye_left").tolist() == [0, 1] and kp.region("mouth").tolist() == [3]


def test_csv_wide_form_regions_from_column_names(tmp_path):
    path = tmp_path / "lm.csv"
    path.write_text("image,eye_0_x,eye_0_y,eye_1_x,eye_1_y,mouth_0_x,mouth_0_y\n"
                    "a.png,1,2,3,4,5,6\n"
                    "b.png,7,8,9,10,11,12\n")
    kp = load_keypoints(path)
    np.testing.assert_allclose(kp["b.png"], [[7, 8], [9, 10], [11, 12]])
    assert kp.region("eye").tolist() == [0, 1] and kp.region("mouth").tolist() == [2]
    assert kp.region("face").tolist() == [0, 1, 2]


@pytest.mark.parametrize("name,content,needle", [
    ("bad.json", "{not json", "not valid JSON"),
    ("counts.json", json.dumps({"images": {"a": [[0, 0], [1, 1]], "b": [[0, 0]]}}), "same [K, 2]"),
    ("nan.json", json.dumps({"images": {"a": [[0, 0], [float("nan"), 1]]}}).replace("NaN", "NaN"), "NaN"),
    ("region.json", json.dumps({"images": {"a": [[0, 0], [1, 1]]}, "regions": {"eye": [0, 5]}}), "outside"),
    ("text.csv", "image,x,y\na.png,1,hello\n", "not a number"),
    ("nohead.csv", "a.png,1,2\n", "header"),
    ("noimage.csv", "file,x,y\na.png,1,2\n", "'image' column"),
])
def test_bad_files_raise_naming_the_file(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(KeypointFileError) as info:
        load_keypoints(path)
    assert str(path) in str(info.value) and needle in str(info.value)
    assert isinstance(info.value, FacegenError)


def test_missing_file_raises(tmp_path):
    with pytest.raises(KeypointFileError, match="not found"):
        load_keypoints(tmp_path / "nope.csv")


def test_mean_template_fills_its_box_in_face_order():
    t = mean_template(64)
    pts = t["any image name"]
    assert pts.shape == (68, 2) and t.num_points == 68 and t.image_size == (64, 64)
    left, top, right, bottom = (np.array(DEFAULT_TEMPLATE_BOX) * 64 - 0.5)
    np.testing.assert_allclose(pts.min(0), [left, top], atol=1e-3)
    np.testing.assert_allclose(pts.max(0), [right, bottom], atol=1e-3)
    eyes, mouth, brows = pts[36:48].mean(0), pts[48:68].mean(0), pts[17:27].mean(0)
    assert brows[1] < eyes[1] < mouth[1]                       # v grows downwards
    assert pts[36:42, 0].mean() < pts[42:48, 0].mean()         # subject's right eye on the image left
    with pytest.raises(KeypointFileError):
        mean_template(64, box=(0.8, 0.2, 0.2, 0.9))
