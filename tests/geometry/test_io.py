"""Mesh I/O: OBJ parsing (v/vt/vn tokens, negative indices, polygons), errors, atomic round trip."""
from __future__ import annotations

import numpy as np
import pytest

from facegen.errors import MeshFormatError
from facegen.geometry import load_mesh, save_obj, unique_edges

OBJ_WITH_UVS = """# a unit square (quad) and a triangle using v/vt/vn and negative indices
v 0 0 0
v 1 0 0 0.5 0.5 0.5
v 1 1 0
v 0 1 0
vt 0 0
vt 1 0
vt 1 1
vn 0 0 1
f 1/1/1 2/2/1 3/3/1 4/1/1
v 2 0 0
f -4//1 -1//1 -3//1
"""


def test_obj_parses_v_f_lines_in_file_order(tmp_path):
    path = tmp_path / "square.obj"
    path.write_text(OBJ_WITH_UVS)
    mesh = load_mesh(path, expected_vertices=5)
    assert mesh.vertices.dtype == np.float64 and mesh.faces.dtype == np.int64
    np.testing.assert_array_equal(mesh.vertices, [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [2, 0, 0]])
    # quad 1-2-3-4 fans to (0,1,2), (0,2,3); "-4 -1 -3" after 5 vertices is (2, 5, 3) 1-based.
    np.testing.assert_array_equal(mesh.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])


def test_pentagon_is_fan_triangulated(tmp_path):
    path = tmp_path / "pentagon.obj"
    path.write_text("".join(f"v {np.cos(a)} {np.sin(a)} 0\n" for a in np.linspace(0, 5, 5)) + "f 1 2 3 4 5\n")
    np.testing.assert_array_equal(load_mesh(path).faces, [[0, 1, 2], [0, 2, 3], [0, 3, 4]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no vertices"),
        ("v 0 0 0\nv 1 0 nan\nv 0 1 0\nf 1 2 3\n", "NaN/inf"),
        ("v 0 0 0\nv 1 0 inf\nv 0 1 0\nf 1 2 3\n", "NaN/inf"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 4\n", "out of range"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 -4\n", "out of range"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 0 1 2\n", "1-based"),
        ("v 0 0 x\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "non-numeric"),
        ("v 0 0\nv 1 0 0\n", "fewer than 3"),
    ],
)
def test_corrupt_obj_raises_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.obj"
    path.write_text(text)
    with pytest.raises(MeshFormatError, match=message) as info:
        load_mesh(path)
    assert "bad.obj" in str(info.value)


def test_missing_file_and_wrong_count_raise(tmp_path):
    with pytest.raises(MeshFormatError, match="not found"):
        load_mesh(tmp_path / "absent.obj")
    path = tmp_path / "tri.obj"
    save_obj(path, np.eye(3), [[0, 1, 2]])
    with pytest.raises(MeshFormatError, match="has 3 vertices, expected 4"):
        load_mesh(path, expected_vertices=4)


def test_save_obj_round_trip_is_atomic(tmp_path, icosphere):
    vertices, faces = icosphere
    path = tmp_path / "sub" / "sphere.obj"
    save_obj(path, vertices.astype(np.float32), faces)
    mesh = load_mesh(path, expected_vertices=len(vertices))
    np.testing.assert_allclose(mesh.vertices, vertices, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(mesh.faces, faces)
    assert [p.name for p in path.parent.iterdir()] == ["sphere.obj"]  # no temporary file left
    with pytest.raises(MeshFormatError, match=r"sphere.obj: faces: expected shape \[F, 3\], got \[\d+, 2\]"):
        save_obj(path, vertices, faces[:, :2])


def test_ply_goes_through_trimesh_without_reordering(tmp_path, icosphere):
    import trimesh

    vertices, faces = icosphere
    path = tmp_path / "sphere.ply"
    trimesh.Trimesh(vertices, faces, process=False).export(path)
    mesh = load_mesh(path)
    np.testing.assert_allclose(mesh.vertices, vertices, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, faces)
    (tmp_path / "junk.ply").write_bytes(b"ply\nformat nonsense\n")
    with pytest.raises(MeshFormatError, match="junk.ply"):
        load_mesh(tmp_path / "junk.ply")


def test_unique_edges_of_two_triangles():
    faces = np.array([[0, 1, 2], [2, 1, 3]])
    np.testing.assert_array_equal(unique_edges(faces), [[0, 1], [0, 2], [1, 2], [1, 3], [2, 3]])


def test_icosphere_edge_count(icosphere):
    vertices, faces = icosphere
    assert unique_edges(faces).shape == (len(vertices) + len(faces) - 2, 2)  # Euler: V - E + F = 2


@pytest.mark.realdata
def test_ict_obj_keeps_file_vertex_count(shared_data):
    mesh = load_mesh(shared_data / "ict_facekit/FaceXModel/generic_neutral_mesh.obj", expected_vertices=26719)
    assert mesh.faces.shape[1] == 3 and mesh.faces.max() == 26718
    assert len(mesh.faces) > 26384  # quads are split


# ---------------------------------------------------------------- meshes checked against their own header
def _ply(tmp_path, icosphere, encoding: str):
    import trimesh

    vertices, faces = icosphere
    path = tmp_path / f"sphere_{encoding}.ply"
    trimesh.Trimesh(vertices, faces, process=False).export(path, encoding=encoding)
    return path


def _cut_lines(path, keep_lines: int):
    """Keep the header and the first ``keep_lines`` data lines (a file cut at a line boundary)."""
    data = path.read_bytes()
    head, body = data.split(b"end_header\n", 1)
    path.write_bytes(head + b"end_header\n" + b"".join(body.splitlines(keepends=True)[:keep_lines]))


@pytest.mark.parametrize("encoding", ["ascii", "binary"])
def test_intact_ply_loads(tmp_path, icosphere, encoding):
    mesh = load_mesh(_ply(tmp_path, icosphere, encoding), expected_vertices=162, expected_faces=icosphere[1])
    assert mesh.faces.shape == (320, 3)


@pytest.mark.parametrize("keep, where", [(162 + 190, "faces"), (100, "vertices")])
def test_ascii_ply_cut_at_a_line_boundary_is_refused(tmp_path, icosphere, keep, where):
    path = _ply(tmp_path, icosphere, "ascii")
    _cut_lines(path, keep)
    with pytest.raises(MeshFormatError, match=r"sphere_ascii.ply: truncated: its header declares 162 vertices and "
                                              r"320 faces, the file holds \d+ data lines"):
        load_mesh(path)


def test_binary_ply_cut_short_is_refused(tmp_path, icosphere):
    path = _ply(tmp_path, icosphere, "binary")
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(MeshFormatError, match="sphere_binary.ply"):
        load_mesh(path)


def test_topology_other_than_the_template_is_refused(tmp_path, icosphere):
    vertices, faces = icosphere
    path = tmp_path / "cut.obj"
    save_obj(path, vertices, faces[:-7])       # an OBJ cut in its faces: no header to tell, the template does
    with pytest.raises(MeshFormatError, match=r"cut.obj: has 313 faces, expected 320"):
        load_mesh(path, expected_faces=faces)
    save_obj(path, vertices, faces[:, [0, 2, 1]])
    with pytest.raises(MeshFormatError, match=r"cut.obj: face 0 is .*another topology"):
        load_mesh(path, expected_faces=faces)
