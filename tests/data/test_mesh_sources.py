"""Mesh sources: CoMA / FaceScape parsing on fixture trees in their exact layouts, splits, procedural, ICT."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
import yaml

from facegen.data.mesh_sources import (
    allocate_in_memory,
    assign_splits,
    coma,
    facescape,
    get_source,
    procedural,
)
from facegen.errors import DatasetLayoutError, MeshFormatError

SUBJECTS = ("FaceTalk_170725_00137_TA", "FaceTalk_170728_03272_TA", "FaceTalk_170731_00024_TA")
EXPRESSIONS = ("bareteeth", "eyebrow", "mouth_up")
N_FRAMES = 14


def _base_mesh() -> tuple[np.ndarray, np.ndarray]:
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=0.1)  # 162 vertices, metres
    return np.asarray(sphere.vertices), np.asarray(sphere.faces)


def _apex(s: int, e: int) -> int:
    """Sequence position of the expression apex; (2, 1) sits next to the first frame."""
    return 1 if (s, e) == (2, 1) else 5 + s + e


def _sequence(s: int, e: int) -> np.ndarray:
    """[T, V, 3] metres: subject-scaled sphere; from frame 1 a triangular bump peaking at _apex(s, e)."""
    base, _ = _base_mesh()
    neutral = base * (1.0 + 0.1 * s)
    t = np.arange(N_FRAMES)[:, None, None]
    amplitude = np.maximum(0.0, 1.0 - np.abs(t - _apex(s, e)) / 6.0) * (t > 0)  # frame 0 is neutral
    field = np.zeros_like(base)
    mouth = base[:, 1] < -0.05
    if EXPRESSIONS[e] == "mouth_up":  # mouth region moves up and sideways: +x (subject's left) for s != 1
        field[mouth] = [0.01 if s != 1 else -0.01, 0.005, 0.0]
    else:
        field[:, 2] = 0.004 * (e + 1) * (base[:, 1] > 0)
    return neutral + amplitude * field


def write_coma(root: Path, subjects=SUBJECTS) -> Path:
    """CoMA layout: <root>/FaceTalk_*/<expr>/<expr>.NNNNNN.ply, frame numbers from 1, metres."""
    _, faces = _base_mesh()
    for s, subject in enumerate(subjects):
        for e, name in enumerate(EXPRESSIONS):
            folder = root / subject / name
            folder.mkdir(parents=True)
            for t, frame in enumerate(_sequence(s, e)):
                trimesh.Trimesh(frame, faces, process=False).export(folder / f"{name}.{t + 1:06d}.ply")
    return root


def build_coma(root, **options):
    options = {"expressions": EXPRESSIONS, "expected_vertices": 162, "window": 3, "test_fraction": 0.1, **options}
    return coma.build(root, allocate=allocate_in_memory, **options)


@pytest.fixture(scope="module")
def coma_root(tmp_path_factory) -> Path:
    return write_coma(tmp_path_factory.mktemp("coma"))


# ---------------------------------------------------------------- CoMA
def test_coma_labels_units_and_windows(coma_root):
    c = build_coma(coma_root)
    assert c.expression_names == ["neutral", "bareteeth", "eyebrow", "mouth_up_left", "mouth_up_right"]
    assert c.identity_names == list(SUBJECTS)
    assert c.vertices.dtype == np.float32 and c.vertices.shape[1:] == (162, 3)
    row = 0
    for s in range(3):
        for e, name in enumerate(EXPRESSIONS):
            frames = _sequence(s, e) * 1000.0  # metres -> mm
            apex = _apex(s, e)
            window = np.arange(max(1, apex - 3), min(N_FRAMES, apex + 4))
            # neutral = first frame, then the apex window, in sequence order
            assert c.expression[row] == 0 and c.identity[row] == s
            np.testing.assert_allclose(c.vertices[row], frames[0], atol=1e-3)
            rows = slice(row + 1, row + 1 + len(window))
            np.testing.assert_allclose(c.vertices[rows], frames[window], atol=1e-3)
            label = name if name != "mouth_up" else ("mouth_up_right" if s == 1 else "mouth_up_left")
            assert set(c.expression[rows]) == {c.expression_names.index(label)}
            row += 1 + len(window)
    assert row == len(c)
    # the (2, 1) apex is at position 1: its window is clipped at 1 and never contains the neutral frame
    assert _apex(2, 1) == 1
    # template = mean of the neutral frames (mm)
    np.testing.assert_allclose(c.template, c.vertices[c.expression == 0].mean(axis=0), atol=1e-3)


def test_coma_window_ten_frames(coma_root):
    c = build_coma(coma_root, window=10, expressions=("bareteeth",))
    counts = np.bincount(c.identity[c.expression == 1])
    # apex at 5, 6, 7 in a 14-frame sequence: positions max(1, a-10) .. min(13, a+10)
    assert counts.tolist() == [len(range(1, 14))] * 3


def test_coma_lateral_side_from_mouth_region(coma_root):
    neutral, apex = _sequence(1, 2)[0], _sequence(1, 2)[_apex(1, 2)]
    assert coma.lateral_side(neutral, apex, None, 0.05) == "right"
    assert coma.lateral_side(apex, neutral, None, 0.05) == "left"
    moved = np.flatnonzero(np.abs(apex - neutral).sum(axis=1) > 0)
    assert coma.lateral_side(neutral, apex, moved, 0.05) == "right"


def test_coma_overrides(coma_root, tmp_path):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({
        SUBJECTS[0]: {"bareteeth": 4, "eyebrow": None},          # frame number 4 = position 3
        SUBJECTS[1]: {"mouth_up": {"frame": 9, "side": "left"}},
    }))
    c = build_coma(coma_root, overrides=overrides, window=0)
    s0 = c.identity == 0
    assert c.expression_names.index("eyebrow") not in c.expression[s0]
    bareteeth = np.flatnonzero(s0 & (c.expression == 1))
    np.testing.assert_allclose(c.vertices[bareteeth[0]], _sequence(0, 0)[3] * 1000.0, atol=1e-3)
    forced = np.flatnonzero((c.identity == 1) & (c.expression == c.expression_names.index("mouth_up_left")))
    np.testing.assert_allclose(c.vertices[forced[0]], _sequence(1, 2)[8] * 1000.0, atol=1e-3)

    overrides.write_text(yaml.safe_dump({SUBJECTS[0]: {"bareteeth": 99}}))
    with pytest.raises(DatasetLayoutError, match="frame 99"):
        build_coma(coma_root, overrides=overrides)
    overrides.write_text(yaml.safe_dump({"FaceTalk_nobody": {"bareteeth": 2}}))
    with pytest.raises(DatasetLayoutError, match="FaceTalk_nobody"):
        build_coma(coma_root, overrides=overrides)


def test_coma_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="FaceTalk_\\*/<expression>"):
        build_coma(tmp_path / "absent")
    (tmp_path / "subject_01" / "bareteeth").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no FaceTalk_\\* subject folders.*NNNNNN.ply"):
        build_coma(tmp_path)


def test_coma_corrupt_and_wrong_vertex_count(tmp_path):
    root = write_coma(tmp_path / "coma", subjects=SUBJECTS[:1])
    bad = root / SUBJECTS[0] / "eyebrow" / "eyebrow.000003.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 9\nproperty float x\nend_header\n0.1 nan\n")
    with pytest.raises(MeshFormatError, match="eyebrow.000003.ply"):
        build_coma(root)
    small = trimesh.creation.icosphere(subdivisions=1)
    small.export(bad)
    with pytest.raises(MeshFormatError, match=r"eyebrow.000003.ply.*expected 162"):
        build_coma(root)


def test_coma_split_random_by_sample_and_deterministic(coma_root):
    a, b = build_coma(coma_root, seed=3), build_coma(coma_root, seed=3)
    np.testing.assert_array_equal(a.split, b.split)
    assert (a.split == "test").sum() == round(0.1 * len(a))
    assert set(a.split) == {"train", "test"}
    c = build_coma(coma_root, seed=3, split_by="identity_expression")
    for group in set(zip(c.identity.tolist(), c.expression.tolist())):
        rows = (c.identity == group[0]) & (c.expression == group[1])
        assert len(set(c.split[rows])) == 1


# ---------------------------------------------------------------- splits
def test_assign_splits_sorted_seeded_fractions():
    keys = [f"subject_{i:02d}" for i in range(20)]
    split = assign_splits(keys, val_fraction=0.1, test_fraction=0.2, seed=7)
    assert (split == "test").sum() == 4 and (split == "val").sum() == 2
    shuffled = np.random.default_rng(1).permutation(keys)
    split_shuffled = assign_splits(shuffled, 0.1, 0.2, seed=7)
    assert dict(zip(shuffled, split_shuffled)) == dict(zip(keys, split))  # independent of input order
    assert any((assign_splits(keys, 0.1, 0.2, seed=s) != split).any() for s in range(3))
    grouped = assign_splits(["a", "a", "b", "c", "c", "d"], 0.0, 0.25, seed=0)
    assert grouped[0] == grouped[1] and grouped[3] == grouped[4]
    with pytest.raises(DatasetLayoutError, match="no group left"):
        assign_splits(["a", "b"], 0.5, 0.5, seed=0)
    with pytest.raises(DatasetLayoutError, match="unknown mesh source"):
        get_source("bfm")


# ---------------------------------------------------------------- FaceScape
def write_facescape(root: Path, ids=("1", "2", "10"), n_expressions: int = 3, vertices: int = 8) -> Path:
    """FaceScape TU layout <root>/<id>/models_reg/<k>_<expr>.obj, quads with UVs, mm."""
    from facegen.morphable import FACESCAPE_EXPRESSIONS

    for s, subject in enumerate(ids):
        folder = root / subject / "models_reg"
        folder.mkdir(parents=True)
        for k in range(n_expressions):
            v = np.arange(vertices * 3, dtype=np.float64).reshape(vertices, 3) + 100.0 * s + k
            lines = [f"v {x} {y} {z}" for x, y, z in v] + ["vt 0.5 0.5"] * 3
            lines += ["f 1/1 2/2 3/3 4/1", "f 5/1 6/2 7/3 8/1"]
            (folder / f"{k + 1}_{FACESCAPE_EXPRESSIONS[k]}.obj").write_text("\n".join(lines) + "\n")
    return root


def test_facescape_layout_labels_and_discard(tmp_path):
    from facegen.morphable import FACESCAPE_EXPRESSIONS

    root = write_facescape(tmp_path / "fs")
    c = facescape.build(root, allocate=allocate_in_memory, test_fraction=0.3, val_fraction=0.0)
    assert c.identity_names == ["1", "2", "10"]  # natural order
    assert c.expression_names == list(FACESCAPE_EXPRESSIONS) and len(c.expression_names) == 20
    assert c.identity.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert c.expression.tolist() == [0, 1, 2] * 3
    assert c.vertices[4, 0].tolist() == [101.0, 102.0, 103.0]  # subject "2", k = 2 (mm, unchanged)
    assert c.faces.tolist() == [[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]]  # quads fan-split
    assert (c.split == "test").sum() == 3 and len(set(c.split[c.identity == c.identity[c.split == "test"][0]])) == 1
    dropped = facescape.build(root, allocate=allocate_in_memory, discard=[2], test_fraction=0.3, val_fraction=0.0)
    assert dropped.identity_names == ["1", "10"]
    (root / "1" / "models_reg" / "2_smile.obj").unlink()
    assert len(facescape.build(root, allocate=allocate_in_memory, test_fraction=0.3, val_fraction=0.0)) == 8


def test_facescape_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="models_reg/<k>_<expression>.obj"):
        facescape.build(tmp_path / "absent", allocate=allocate_in_memory)
    (tmp_path / "7" / "scans").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no <id>/models_reg"):
        facescape.build(tmp_path, allocate=allocate_in_memory)
    root = write_facescape(tmp_path / "fs")
    bad = root / "10" / "models_reg" / "3_mouth_stretch.obj"
    bad.write_text("v 0 0 0\nv 1 1 1\nf 1 2 1\n")
    with pytest.raises(MeshFormatError, match=r"10/models_reg/3_mouth_stretch.obj.*expected 8"):
        facescape.build(root, allocate=allocate_in_memory, test_fraction=0.3)


# ---------------------------------------------------------------- procedural
def test_procedural_deterministic_labels_and_unseen_test_identities():
    options = dict(allocate=allocate_in_memory, n_identities=4, samples_per_expression=2, seed=5)
    start = time.perf_counter()
    a = procedural.build(None, **options)
    elapsed = time.perf_counter() - start
    b = procedural.build(None, **options)
    c = procedural.build(None, **{**options, "seed": 6})
    print(f"procedural: {len(a)} meshes x {a.vertices.shape[1]} vertices in {elapsed:.2f} s")
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.split, b.split)
    assert not np.allclose(a.vertices, c.vertices)
    assert a.expression_names[0] == "neutral" and len(a.expression_names) >= 13
    assert len(a) == 4 * len(a.expression_names) * 2
    # within-class variation: the two samples of one (identity, expression) differ, also for neutral
    for label in (0, 1):
        rows = np.flatnonzero((a.identity == 0) & (a.expression == label))
        assert np.abs(a.vertices[rows[0]] - a.vertices[rows[1]]).max() > 1e-3
    train_ids = set(a.identity[a.split == "train"])
    assert train_ids.isdisjoint(a.identity[a.split == "test"]) and train_ids.isdisjoint(a.identity[a.split == "val"])
    assert len(set(a.identity[a.split == "test"])) == 1
    with pytest.raises(DatasetLayoutError, match="reads no files"):
        procedural.build("/some/folder", allocate=allocate_in_memory)


# ---------------------------------------------------------------- real data
@pytest.mark.realdata
def test_ict_source_real(shared_data):
    from facegen.data.mesh_sources import ict
    from facegen.morphable import FACESCAPE_EXPRESSIONS

    assert list(ict.FACESCAPE_TO_ARKIT) == list(FACESCAPE_EXPRESSIONS)
    root = shared_data / "ict_facekit"
    start = time.perf_counter()
    c = ict.build(root, allocate=allocate_in_memory, n_identities=4, seed=0, val_fraction=0.25, test_fraction=0.25)
    print(f"ICT: {len(c)} meshes x {c.vertices.shape[1]} vertices in {time.perf_counter() - start:.1f} s")
    assert c.vertices.shape == (80, 9409, 3) and c.expression_names == list(FACESCAPE_EXPRESSIONS)
    assert np.isfinite(c.vertices).all()
    extent = c.template.max(axis=0) - c.template.min(axis=0)
    assert 100.0 < extent[1] < 400.0  # a face in mm
    neutral = c.vertices[(c.identity == 0) & (c.expression == 0)][0]
    for name in ("smile", "mouth_stretch", "eye_closed", "jaw_left"):
        moved = c.vertices[(c.identity == 0) & (c.expression == c.expression_names.index(name))][0]
        assert np.linalg.norm(moved - neutral, axis=1).max() > 2.0, name
    assert len(ict.source_files(root)) >= 60


@pytest.mark.realdata
def test_coma_template_real(shared_data):
    mesh = coma.load_template(shared_data / "coma_template" / "template.obj")
    assert mesh.vertices.shape == (5023, 3) and mesh.faces.shape == (9976, 3)
    assert 150.0 < np.ptp(mesh.vertices[:, 1]) < 400.0  # metres converted to mm


def test_ict_layout_and_table_errors(tmp_path):
    from facegen.data.mesh_sources import ict

    with pytest.raises(DatasetLayoutError, match="FaceXModel/generic_neutral_mesh.obj"):
        ict.build(tmp_path, allocate=allocate_in_memory)
    with pytest.raises(DatasetLayoutError, match="'mouthSmile_L'.*'smile'"):
        ict.expression_table(["jawOpen"], tmp_path)
    names = sorted({b for weights in ict.FACESCAPE_TO_ARKIT.values() for b in weights})
    table = ict.expression_table(names)
    assert table["neutral"].sum() == 0 and table["smile"][names.index("mouthSmile_L")] == 1.0


# ---------------------------------------------------------------- procedural: identity-specific expression style
def _offset_adding_error(collection) -> float:
    """Mean AVD (mm) of ``x_{c,neutral} + (x_{c',s} - x_{c',neutral})`` against ``x_{c,s}`` over all
    ordered identity pairs and non-neutral expressions (one sample per identity x expression)."""
    v = np.asarray(collection.vertices, dtype=np.float64)
    index = {(int(c), int(s)): row for row, (c, s) in enumerate(zip(collection.identity, collection.expression))}
    ids, exps = sorted(set(collection.identity.tolist())), sorted(set(collection.expression.tolist()) - {0})
    errors = [np.linalg.norm(v[index[c, 0]] + v[index[cp, s]] - v[index[cp, 0]] - v[index[c, s]], axis=-1).mean()
              for c in ids for cp in ids if cp != c for s in exps]
    return float(np.mean(errors))


def test_identity_style_makes_offset_adding_measurably_wrong():
    options = dict(allocate=allocate_in_memory, n_identities=5, samples_per_expression=1, intensity_jitter=0.0,
                   coeff_noise=0.0, seed=3)
    plain = procedural.build(None, **options)
    styled = procedural.build(None, **options, style_strength=0.8, style_coactivation=0.3)   # the data config's
    np.testing.assert_array_equal(plain.identity, styled.identity)
    neutral = plain.expression == 0
    # the style scales expression controls only: neutral faces are identical
    np.testing.assert_allclose(styled.vertices[neutral], plain.vertices[neutral], atol=1e-4)
    plain_error, styled_error = _offset_adding_error(plain), _offset_adding_error(styled)
    print(f"offset-adding transfer error: rig only {plain_error:.3f} mm, with identity style {styled_error:.3f} mm")
    # the rig's own identity dependence (jaw pivot, mouth width) is small; the style is what makes the
    # baseline wrong, by a clear margin in mm and relative to the rig-only error
    assert styled_error > 0.3 and styled_error > 2.0 * plain_error


def test_identity_style_gains_are_a_bounded_smooth_function_of_identity():
    from facegen.morphable import ProceduralFaceModel

    model = ProceduralFaceModel(seed=0)
    style = procedural.IdentityStyle(model, strength=0.8, rank=4, correlation=0.7, seed=0)
    ids = torch.randn(256, model.n_id, generator=torch.Generator().manual_seed(0))
    gains = style.gains(ids)
    assert gains.shape == (256, model.n_exp)
    assert float(gains.min()) >= np.exp(-0.8) - 1e-6 and float(gains.max()) <= np.exp(0.8) + 1e-6
    assert float(gains.log().std()) > 0.3                                   # identities really differ
    # it depends on 4 identity directions only: moving orthogonally to them changes nothing
    orthogonal = torch.randn(model.n_id)
    orthogonal -= style.projection @ (style.projection.T @ orthogonal)
    torch.testing.assert_close(style.gains(ids + orthogonal), gains, atol=1e-5, rtol=1e-5)
    # smooth: |d gain_k / d id| <= strength * exp(strength) * |P a_k| = strength * exp(strength) (unit columns)
    step = 1e-3 * torch.randn_like(ids)
    bound = 0.8 * np.exp(0.8) * step.norm(dim=1, keepdim=True)
    assert bool(((style.gains(ids + step) - gains).abs() <= bound + 1e-6).all())
    # left and right twins are correlated but not identical (mostly symmetric faces)
    names = list(model.exp_names)
    log_l, log_r = gains[:, names.index("smile_L")].log(), gains[:, names.index("smile_R")].log()
    assert 0.3 < float(torch.corrcoef(torch.stack([log_l, log_r]))[0, 1]) < 0.99
    torch.testing.assert_close(procedural.IdentityStyle(model, 0.0).gains(ids), torch.ones_like(gains))
    # co-activation: only the listed secondary controls, never negative, none on the neutral face
    co = procedural.IdentityStyle(model, strength=0.8, coactivation=0.3, seed=0)
    extra = co.coactivations(ids)
    secondary = torch.tensor([name in procedural.COACTIVATED for name in names])
    assert float(extra.min()) >= 0.0 and float(extra[:, ~secondary].abs().max()) == 0.0
    assert float(extra[:, secondary].mean()) > 0.05
    torch.testing.assert_close(co.styled(ids, torch.zeros(256, model.n_exp)), torch.zeros(256, model.n_exp))
    for bad in (dict(strength=-1.0), dict(rank=0), dict(rank=model.n_id + 1), dict(correlation=1.5)):
        with pytest.raises(DatasetLayoutError, match="data.style_"):
            procedural.IdentityStyle(model, **{"strength": 0.5, **bad})
    with pytest.raises(DatasetLayoutError, match="data.style_coactivation"):
        procedural.IdentityStyle(model, coactivation=-0.1)


# ---------------------------------------------------------------- truncated files are blamed themselves
def _cut_obj(path: Path, keep: int) -> None:
    path.write_text("\n".join(path.read_text().splitlines()[:keep]) + "\n")


def test_facescape_truncated_first_model_is_blamed_not_the_next(tmp_path):
    root = write_facescape(tmp_path / "fs")
    first = root / "1" / "models_reg" / "1_neutral.obj"
    _cut_obj(first, 5)                                   # cut in its vertices (5 of 8 lines)
    with pytest.raises(MeshFormatError, match=r"1/models_reg/1_neutral.obj: has 5 vertices, expected 8") as info:
        facescape.build(root, allocate=allocate_in_memory, test_fraction=0.3)
    assert "2_smile" not in str(info.value)


def test_facescape_model_cut_in_its_faces_is_refused(tmp_path):
    root = write_facescape(tmp_path / "fs")
    bad = root / "2" / "models_reg" / "2_smile.obj"
    _cut_obj(bad, 8 + 3 + 1)                             # vertices, uvs and only the first quad
    with pytest.raises(MeshFormatError, match=r"2/models_reg/2_smile.obj: has 2 faces, expected 4 \(the layout of"):
        facescape.build(root, allocate=allocate_in_memory, test_fraction=0.3)


def test_coma_first_frame_truncated_in_its_faces_is_refused(tmp_path):
    root = tmp_path / "coma"
    write_coma(root, subjects=SUBJECTS[:1])
    first = root / SUBJECTS[0] / "bareteeth" / "bareteeth.000001.ply"
    vertices, faces = _base_mesh()
    trimesh.Trimesh(vertices, faces, process=False).export(first, encoding="ascii")
    head, body = first.read_bytes().split(b"end_header\n", 1)
    first.write_bytes(head + b"end_header\n" + b"".join(body.splitlines(keepends=True)[:162 + 200]))
    with pytest.raises(MeshFormatError, match=r"bareteeth.000001.ply: truncated: its header declares 162 vertices "
                                              r"and 320 faces"):
        build_coma(root)


def test_coma_frame_with_another_topology_is_refused(tmp_path):
    root = tmp_path / "coma"
    write_coma(root, subjects=SUBJECTS[:1])
    frame = root / SUBJECTS[0] / "eyebrow" / "eyebrow.000004.ply"
    vertices, faces = _base_mesh()
    trimesh.Trimesh(vertices, faces[::-1], process=False).export(frame)   # same counts, other triangle order
    with pytest.raises(MeshFormatError, match=r"eyebrow.000004.ply: face 0 is .*another topology"):
        build_coma(root)
