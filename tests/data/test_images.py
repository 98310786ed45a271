"""ImageDataModule: folder trees, NVlabs zips, labels, corrupt files, real face sets."""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegen.data.images import ImageDataModule
from facegen.errors import DatasetLayoutError


def picture(seed: int, size=(40, 30), mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """root/alice/{0.png, 1.jpg}, root/bob/{face.pgm, scan (GIF, no extension), broken.png}, root/README."""
    root = tmp_path / "faces"
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    picture(0).save(root / "alice" / "0.png")
    picture(1).save(root / "alice" / "1.jpg")
    picture(2, mode="L").save(root / "bob" / "face.pgm")
    picture(3, mode="L").save(root / "bob" / "scan", format="GIF")
    (root / "bob" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "README").write_text("four faces of two people")
    return root


def test_folder_tree_with_labels(tree):
    dm = ImageDataModule(tree, resolution=16, channels=3, use_labels=True, batch_size=2)
    with pytest.warns(UserWarning, match="broken.png"):
        kwargs = dm.model_kwargs()
    assert kwargs == {"img_resolution": 16, "img_channels": 3, "c_dim": 2}
    assert dm.label_names == ["alice", "bob"]
    assert [r.name for r in dm.train_set.records] == ["alice/0.png", "alice/1.jpg", "bob/face.pgm", "bob/scan"]
    item = dm.train_set[3]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.float32
    assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
    torch.testing.assert_close(item["c"], torch.tensor([0.0, 1.0]))
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 16, 16) and batch["c"].shape == (2, 2)


def test_exact_pixels_crop_flip_and_grey(tree, tmp_path):
    root = tmp_path / "exact"
    root.mkdir()
    pixels = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6) * 10  # 6 wide, 4 high -> centre crop cols 1..4
    Image.fromarray(pixels, "L").save(root / "a.png")
    dm = ImageDataModule(root, resolution=4, channels=1, xflip=True)
    dm.setup("fit")
    assert len(dm.train_set) == 2
    expected = torch.from_numpy(pixels[:, 1:5].astype(np.float32)) / 127.5 - 1
    torch.testing.assert_close(dm.train_set[0]["image"][0], expected)
    torch.testing.assert_close(dm.train_set[1]["image"][0], expected.flip(-1))
    assert dm.model_kwargs()["c_dim"] == 0


def test_nvlabs_zip_with_dataset_json(tmp_path):
    path = tmp_path / "dataset.zip"
    labels = []
    with zipfile.ZipFile(path, "w") as z:
        for i in range(5):
            name = f"00000/img{i:08d}.png"
            buffer = io.BytesIO()
            picture(i, size=(8, 8)).save(buffer, format="PNG")
            z.writestr(name, buffer.getvalue())
            labels.append([name, i % 3])
        z.writestr("dataset.json", json.dumps({"labels": labels}))
    dm = ImageDataModule(path, resolution=8, use_labels=True, val_fraction=0.4, seed=1)
    assert dm.model_kwargs() == {"img_resolution": 8, "img_channels": 3, "c_dim": 3}
    assert len(dm.train_set) == 3 and len(dm.val_set) == 2
    item = dm.val_set[0]
    label = dict(labels)[dm.val_set.records[0].name]
    torch.testing.assert_close(item["c"], torch.nn.functional.one_hot(torch.tensor(label), 3).float())
    expected = torch.from_numpy(np.array(picture(int(dm.val_set.records[0].name[-6:-4]), size=(8, 8))))
    torch.testing.assert_close(item["image"], expected.permute(2, 0, 1).float() / 127.5 - 1)


def test_layout_errors(tmp_path, tree):
    with pytest.raises(DatasetLayoutError, match="nowhere"):
        ImageDataModule(tmp_path / "nowhere", resolution=8).setup()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    with pytest.raises(DatasetLayoutError, match="no readable image"):
        ImageDataModule(empty, resolution=8).setup()
    flat = tmp_path / "flat"
    flat.mkdir()
    picture(0).save(flat / "x.png")
    with pytest.raises(DatasetLayoutError, match="sub-folders"):
        ImageDataModule(flat, resolution=8, use_labels=True).setup()


@pytest.mark.realdata
def test_orl_faces_identities(shared_data):
    dm = ImageDataModule(shared_data / "orl_faces", resolution=32, channels=1, use_labels=True, batch_size=8)
    assert dm.model_kwargs() == {"img_resolution": 32, "img_channels": 1, "c_dim": 40}
    assert len(dm.train_set) == 400
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 1, 32, 32) and batch["image"].std() > 0.1


@pytest.mark.realdata
def test_yale_faces_without_extensions(shared_data):
    dm = ImageDataModule(shared_data / "yalefaces", resolution=32, channels=3)
    dm.setup()
    assert len(dm.train_set) == 164
    image = dm.train_set[0]["image"]
    assert image.shape == (3, 32, 32)
    torch.testing.assert_close(image[0], image[1])  # greyscale GIF converted to RGB


def test_truncated_files_are_skipped_at_the_scan_and_a_corrupt_one_stops_the_run(tmp_path):
    """A JPEG cut before its end marker and a PNG without IEND pass PIL's verify(); the scan refuses them (named),
    and a file that passes the scan but does not decode raises naming it instead of serving another image."""
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        picture(i, size=(24, 24)).save(root / f"{i}.jpg", quality=95)
    picture(3, size=(24, 24)).save(root / "3.png")
    jpg = (root / "1.jpg").read_bytes()
    (root / "1.jpg").write_bytes(jpg[: len(jpg) * 2 // 3])
    png = (root / "3.png").read_bytes()
    (root / "3.png").write_bytes(png[: len(png) - 20])
    dm = ImageDataModule(root, resolution=16, channels=3, batch_size=2)
    with pytest.warns(UserWarning) as warned:
        dm.model_kwargs()
    assert {"1.jpg", "3.png"} <= {Path(str(w.message).split()[-1]).name for w in warned}
    assert [r.name for r in dm.train_set.records] == ["0.jpg", "2.jpg"]  # each served once per epoch
    good = (root / "2.jpg").read_bytes()
    (root / "2.jpg").write_bytes(good[:200] + bytes(len(good) - 202) + good[-2:])  # header and end marker intact
    with pytest.raises(DatasetLayoutError, match="2.jpg: cannot be decoded"):
        dm.train_set.load(1)


def test_a_forked_process_reads_the_zip_through_its_own_handle(tmp_path):
    """A zip handle inherited through fork shares its file offset with the parent (ddp_fork ranks and dataloader
    workers read at once: CI saw ``BadZipFile``); each process opens its own."""
    import os

    from facegen.data.images import ImageSource
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(4):
            z.writestr(f"{i}.bin", bytes([i]) * 1000)
    source = ImageSource(path)
    assert source.read("1.bin") == bytes([1]) * 1000
    parent_handle = source._zip
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's handle, and reads correct bytes
        ok = source.read("2.bin") == bytes([2]) * 1000 and source._zip is not parent_handle
        os.write(write_end, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read_end, 1) == b"1"
    assert source.read("3.bin") == bytes([3]) * 1000 and source._zip is parent_handle
