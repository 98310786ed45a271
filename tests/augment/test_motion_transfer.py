"""TPS warps move keypoints where asked; retargeting normalises by face size and region; driving motion."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facegen.augment.driving import DrivingMotion, faceworld_driving, video_driving
from facegen.augment.retarget import retarget
from facegen.augment.tps import separate_points, tps_warp
from facegen.data.keypoints import KeypointFileError, default_regions, mean_template
from facegen.errors import ShapeError


def _dot_image(points, size=64, sigma=1.2):
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    image = torch.zeros(1, 1, size, size)
    for u, v in points:
        image[0, 0] += torch.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma ** 2))
    return image


def _peak(image, near, radius=6):
    """(u, v) of the brightest pixel within ``radius`` of ``near``."""
    size = image.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    masked = torch.where((xx - near[0]) ** 2 + (yy - near[1]) ** 2 <= radius ** 2, image[0, 0], torch.tensor(-1.0))
    v, u = divmod(int(masked.argmax()), size)
    return np.array([u, v], float)


@pytest.mark.parametrize("solver", ["bookstein", "kornia"])
def test_tps_warp_moves_a_dot_from_source_to_destination(solver):
    src = torch.tensor([[[20.0, 20.0], [44.0, 22.0], [22.0, 44.0], [42.0, 42.0], [32.0, 32.0]]])
    dst = src.clone()
    dst[0, 0] += torch.tensor([5.0, 3.0])                      # move the dot at (20, 20) to (25, 23)
    dst[0, 3] += torch.tensor([-3.0, 4.0])                     # and (42, 42) to (39, 46)
    image = _dot_image([(20, 20), (42, 42)])
    warped = tps_warp(image, src, dst, solver=solver)
    for k in (0, 3):
        np.testing.assert_allclose(_peak(warped, dst[0, k].numpy()), dst[0, k].numpy(), atol=1.0)
        assert float(warped[0, 0, int(src[0, k, 1]), int(src[0, k, 0])]) < 0.5   # it left its old place
    # the static control point keeps its dot position (unmoved points stay)
    still = _dot_image([(32, 32)])
    np.testing.assert_allclose(_peak(tps_warp(still, src, dst, solver=solver), (32, 32)), (32, 32), atol=0.0)


def test_tps_warp_identity_and_batch():
    image = torch.rand(2, 3, 32, 32)
    kp = torch.rand(2, 10, 2) * 28 + 2
    torch.testing.assert_close(tps_warp(image, kp, kp), image, atol=1e-5, rtol=0)
    with pytest.raises(ShapeError, match=r"dst_kp: expected shape \[2, 10, 2\], got \[1, 10, 2\]"):
        tps_warp(image, kp, kp[:1])


def test_coinciding_destinations_stay_regular():
    src = np.array([[[20.0, 20.0], [20.0, 26.0], [40.0, 40.0]]], np.float32)  # upper and lower eyelid
    dst = src.copy()
    dst[0, 0] = dst[0, 1]                                                     # the lid closes onto the other
    sep = separate_points(src, dst, 1.0)
    assert np.linalg.norm(sep[0, 0] - sep[0, 1]) >= 0.999
    warped = tps_warp(_dot_image([(20, 20)]), torch.from_numpy(src), torch.from_numpy(dst))
    assert torch.isfinite(warped).all()
    # coinciding sources (closed lips) opening up: Bookstein's spline is regular too
    src2 = np.array([[[30.0, 30.0], [30.0, 30.0], [10.0, 10.0]]], np.float32)
    dst2 = src2.copy()
    dst2[0, 1, 1] += 4
    warped = tps_warp(torch.rand(1, 1, 48, 48), torch.from_numpy(src2), torch.from_numpy(dst2))
    assert torch.isfinite(warped).all() and warped.abs().max() <= 1.0


def test_retarget_normalises_scale_rotation_and_regions():
    rng = np.random.default_rng(0)
    still = rng.uniform(10, 50, (68, 2))
    # the driving face is half the size and rotated by 90 degrees
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])
    neutral = 0.5 * still @ rot.T + 100
    disp = np.zeros((1, 68, 2))
    disp[0, 8] = [0.0, 1.0]                               # the chin moves by 1 px in the driving frame
    motion = DrivingMotion(neutral[None] + disp, neutral, default_regions(68))
    out = retarget(motion, still)
    expected = 2.0 * disp[0, 8] @ rot                      # back-rotated (R^T = R^-1) and doubled
    np.testing.assert_allclose(out[0, 8] - still[8], expected, atol=1e-4)
    np.testing.assert_allclose(np.delete(out[0], 8, 0), np.delete(still, 8, 0), atol=1e-4)
    # a still whose mouth is 1.5x larger (relative to the face) gets 1.5x the mouth motion
    big_mouth = still.copy()
    centre = still[48:68].mean(0)
    big_mouth[48:68] = centre + 1.5 * (still[48:68] - centre)
    disp = np.zeros((1, 68, 2))
    disp[0, 57] = [0.0, 1.0]
    motion = DrivingMotion(0.5 * still[None] + disp, 0.5 * still, default_regions(68))
    plain = retarget(motion, still)[0, 57] - still[57]
    scaled = retarget(motion, big_mouth)[0, 57] - big_mouth[57]
    unscaled = retarget(motion, big_mouth, per_region=False)[0, 57] - big_mouth[57]
    assert plain[1] == pytest.approx(2.0, rel=1e-3)
    assert unscaled[1] != pytest.approx(3.0, rel=0.05)             # the global face size alone misses it
    assert scaled[1] == pytest.approx(1.5 * plain[1], rel=1e-3)


def test_retarget_to_another_point_scheme_by_region():
    template = mean_template(64)["x"].astype(np.float64)
    ids = {"eye_right": [36, 39], "eye_left": [42, 45], "mouth": [48, 51, 54, 57], "nose": [27, 30, 31, 35]}
    still = np.concatenate([template[v] for v in ids.values()])           # a 12-point scheme
    regions, start = {}, 0
    for name, v in ids.items():
        regions[name] = list(range(start, start + len(v)))
        start += len(v)
    disp = np.zeros((1, 68, 2))
    disp[0, 48:68] = [0.0, 2.0]                                            # the whole mouth moves down by 2 px
    out = retarget(DrivingMotion(template[None] + disp, template, default_regions(68)), still, regions)
    moved = out[0] - still
    np.testing.assert_allclose(moved[regions["mouth"], 1], 2.0, rtol=0.1)  # the mouth points follow the mouth
    assert np.abs(moved[regions["eye_left"] + regions["eye_right"] + regions["nose"]]).max() < 1e-6


def test_faceworld_driving_moves_the_named_parts():
    motion = faceworld_driving(["eye_closed", "mouth_stretch"], frames=2)
    assert motion.landmarks.shape == (4, 68, 2) and motion.labels[1] == "eye_closed@1.00"
    blink, jaw = motion.displacements[1], motion.displacements[3]
    assert blink[[37, 38, 43, 44], 1].min() > 1.0            # upper lids move down (v grows)
    assert np.abs(blink[48:68]).max() < 0.05 * blink[[37, 38, 43, 44], 1].min() + 1e-3
    assert jaw[8, 1] > 5.0 and jaw[8, 1] > 2 * np.abs(jaw[36:48]).max()   # the chin drops, the eyes hardly move
    np.testing.assert_allclose(motion.displacements[0], 0.5 * motion.displacements[1], atol=0.3)
    with pytest.raises(KeypointFileError, match="unknown driving expression"):
        faceworld_driving(["no_such_face"], frames=2)


def test_video_driving_removes_head_motion(tmp_path):
    motion = faceworld_driving(["smile", "blink"], frames=3)
    frames = np.concatenate([motion.neutral[None], motion.landmarks])         # [T, 68, 2], neutral first
    angle = np.deg2rad(np.linspace(0, 10, len(frames)))
    moved = np.empty_like(frames)
    for t, a in enumerate(angle):                                             # plant a head roll + shift + zoom
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        moved[t] = (1 + 0.02 * t) * (frames[t] - 128) @ rot.T + 128 + [3 * t, -2 * t]
    np.savez(tmp_path / "clip.npz", landmarks=moved)
    video = video_driving(tmp_path / "clip.npz")
    assert video.num_frames == len(frames)
    truth = frames - frames[0]
    assert np.abs(video.displacements - truth).max() < 0.25 * np.abs(truth).max()
    raw = video_driving(tmp_path / "clip.npz", stabilise=False)
    assert np.abs(raw.displacements - truth).max() > 3 * np.abs(video.displacements - truth).max()
    with pytest.raises(KeypointFileError, match="not found"):
        video_driving(tmp_path / "absent.npz")


def test_video_driving_from_a_keypoints_file_orders_frames_naturally(tmp_path):
    import json

    base = np.zeros((4, 2))
    base[:, 0] = [0, 10, 0, 10]
    base[:, 1] = [0, 0, 10, 10]
    frames = {}
    for t in (0, 1, 2, 10):                                  # point 3 moves down by 0.5 px per frame number
        points = base.copy()
        points[3, 1] += 0.5 * t
        frames[f"frame{t}.png"] = points.tolist()
    path = tmp_path / "clip.json"
    path.write_text(json.dumps({"images": dict(reversed(list(frames.items())))}))
    video = video_driving(path, stabilise=False)
    assert video.labels == ["frame0.png", "frame1.png", "frame2.png", "frame10.png"]
    np.testing.assert_allclose(video.displacements[:, 3, 1], [0, 0.5, 1.0, 5.0])
