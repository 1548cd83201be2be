"""Small synthetic MEGRE series shared by the BIDS and CLI tests (not a test module)."""

import json

import numpy as np

from analysis.simulation.acquisition import MegreSimulation


def _rot_affine():
    c, s = np.cos(0.3), np.sin(0.3)  # 0.3 rad oblique about x
    a = np.eye(4)
    a[:3, :3] = np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ np.diag([0.5, 0.5, 2.0])
    a[:3, 3] = [-10.0, 20.0, 5.0]
    return a


def _tiny_sim(shape=(6, 7, 5), n_echoes=3, seed=0, affine=None):
    rng = np.random.default_rng(seed)
    te = 0.0043 + 0.0048 * np.arange(n_echoes)
    z = np.zeros(shape, np.float32)
    return MegreSimulation(
        magnitude=rng.uniform(1, 100, shape + (n_echoes,)).astype(np.float32),
        phase=rng.uniform(-np.pi, np.pi, shape + (n_echoes,)).astype(np.float32),
        echo_times_s=te, b0_tesla=3.0, b0_direction=(0.0, 0.0, 1.0),
        affine=_rot_affine() if affine is None else affine, voxel_size_mm=(0.5, 0.5, 2.0),
        repetition_time_s=0.057, flip_angle_deg=20.0, total_field_ppm=z, local_field_ppm=z,
        background_field_ppm=z, phase_offset_rad=z, noise_sigma=1.0, snr=50.0, seed=seed)


def _edit_json(path, **changes):
    d = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    path.write_text(json.dumps(d))
