"""rosinality / NVlabs checkpoint import-export against independent reference forwards written here."""
from __future__ import annotations

import math
import os
import pickle
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from facegen.checkpoints import load_foreign
from facegen.errors import CheckpointError
from facegen.models.stylegan2 import Generator
from facegen.models.stylegan2.formats import (
    load_generator,
    load_nvlabs_pkl,
    load_rosinality,
    rosinality_state_dict,
    save_rosinality,
)

torch.set_num_threads(1)
RES, STYLE_DIM, N_MLP = 32, 16, 2
CHANNELS = {4: 32, 8: 32, 16: 16, 32: 8}  # = min(256 // R, 32)
LOG_SIZE = int(math.log2(RES))
NUM_LAYERS = (LOG_SIZE - 2) * 2 + 1  # rosinality Generator.num_layers
N_LATENT = LOG_SIZE * 2 - 2


# ---------------------------------------------------------------------------------------------
# rosinality layout, written from rosinality/stylegan2-pytorch model.py


def rosinality_keys() -> dict[str, tuple[int, ...]]:
    """Key -> shape of rosinality ``Generator(32, 16, 2).state_dict()`` with CHANNELS."""
    keys: dict[str, tuple[int, ...]] = {}
    for i in range(1, N_MLP + 1):
        keys[f"style.{i}.weight"], keys[f"style.{i}.bias"] = (STYLE_DIM, STYLE_DIM), (STYLE_DIM,)
    keys["input.input"] = (1, CHANNELS[4], 4, 4)

    def styled_conv(name, c_in, c_out, upsample):
        keys[f"{name}.conv.weight"] = (1, c_out, c_in, 3, 3)
        keys[f"{name}.conv.modulation.weight"], keys[f"{name}.conv.modulation.bias"] = (c_in, STYLE_DIM), (c_in,)
        if upsample:
            keys[f"{name}.conv.blur.kernel"] = (4, 4)
        keys[f"{name}.noise.weight"] = (1,)
        keys[f"{name}.activate.bias"] = (c_out,)

    def to_rgb(name, c_in, upsample):
        if upsample:
            keys[f"{name}.upsample.kernel"] = (4, 4)
        keys[f"{name}.conv.weight"] = (1, 3, c_in, 1, 1)
        keys[f"{name}.conv.modulation.weight"], keys[f"{name}.conv.modulation.bias"] = (c_in, STYLE_DIM), (c_in,)
        keys[f"{name}.bias"] = (1, 3, 1, 1)

    styled_conv("conv1", CHANNELS[4], CHANNELS[4], False)
    to_rgb("to_rgb1", CHANNELS[4], False)
    c_in = CHANNELS[4]
    for k, i in enumerate(range(3, LOG_SIZE + 1)):
        c_out = CHANNELS[2 ** i]
        styled_conv(f"convs.{2 * k}", c_in, c_out, True)
        styled_conv(f"convs.{2 * k + 1}", c_out, c_out, False)
        to_rgb(f"to_rgbs.{k}", c_out, True)
        c_in = c_out
    for layer_idx in range(NUM_LAYERS):
        r = 2 ** ((layer_idx + 5) // 2)
        keys[f"noises.noise_{layer_idx}"] = (1, 1, r, r)
    return keys


def make_kernel() -> torch.Tensor:
    k = torch.tensor([1.0, 3, 3, 1])
    k = k[None] * k[:, None]
    return k / k.sum()


def random_rosinality(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in rosinality_keys().items():
        if key.endswith((".blur.kernel", ".upsample.kernel")):
            sd[key] = make_kernel() * 4
        elif key.endswith("modulation.bias"):
            sd[key] = 1 + 0.2 * torch.randn(shape, generator=g)
        elif key.endswith(("noise.weight", "activate.bias", ".bias")) and not key.startswith("style"):
            sd[key] = 0.3 * torch.randn(shape, generator=g)
        elif key.startswith("style") and key.endswith("weight"):
            sd[key] = torch.randn(shape, generator=g) / 0.01  # EqualLinear(lr_mul=0.01) init
        else:
            sd[key] = torch.randn(shape, generator=g)
    return sd


def upfirdn(x, kernel, up, pad):
    """rosinality upfirdn2d_native for down=1 and non-negative pads."""
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    k = torch.flip(kernel, [0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)


def rosinality_forward(sd, z, truncation=1.0, truncation_latent=None):
    """rosinality Generator.forward(z, randomize_noise=False), fused modulated convs, from its code."""
    x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    for i in range(1, N_MLP + 1):  # EqualLinear(lr_mul=0.01, activation="fused_lrelu")
        x = F.linear(x, sd[f"style.{i}.weight"] * (0.01 / math.sqrt(STYLE_DIM)))
        x = F.leaky_relu(x + sd[f"style.{i}.bias"] * 0.01, 0.2) * math.sqrt(2)
    if truncation < 1:
        x = truncation_latent + truncation * (x - truncation_latent)
    latent = x.unsqueeze(1).repeat(1, N_LATENT, 1)
    batch = z.shape[0]

    def modconv(inp, name, style, demodulate=True, upsample=False):
        weight = sd[f"{name}.conv.weight"]
        _, c_out, c_in, k, _ = weight.shape
        style = F.linear(style, sd[f"{name}.conv.modulation.weight"] / math.sqrt(STYLE_DIM),
                         sd[f"{name}.conv.modulation.bias"]).view(batch, 1, c_in, 1, 1)
        weight = weight / math.sqrt(c_in * k * k) * style
        if demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8).view(batch, c_out, 1, 1, 1)
        h = inp.shape[-1]
        inp = inp.reshape(1, batch * c_in, h, h)
        if upsample:
            weight = weight.transpose(1, 2).reshape(batch * c_in, c_out, k, k)
            out = F.conv_transpose2d(inp, weight, padding=0, stride=2, groups=batch)
            out = out.view(batch, c_out, *out.shape[-2:])
            return upfirdn(out, make_kernel() * 4, 1, (1, 1))
        out = F.conv2d(inp, weight.reshape(batch * c_out, c_in, k, k), padding=k // 2, groups=batch)
        return out.view(batch, c_out, h, h)

    def styled_conv(inp, name, style, noise, upsample=False):
        out = modconv(inp, name, style, upsample=upsample) + sd[f"{name}.noise.weight"] * noise
        return F.leaky_relu(out + sd[f"{name}.activate.bias"].view(1, -1, 1, 1), 0.2) * math.sqrt(2)

    def to_rgb(inp, name, style, skip):
        out = modconv(inp, name, style, demodulate=False) + sd[f"{name}.bias"]
        return out if skip is None else out + upfirdn(skip, make_kernel() * 4, 2, (2, 1))

    noise = [sd[f"noises.noise_{i}"] for i in range(NUM_LAYERS)]
    out = sd["input.input"].repeat(batch, 1, 1, 1)
    out = styled_conv(out, "conv1", latent[:, 0], noise[0])
    skip = to_rgb(out, "to_rgb1", latent[:, 1], None)
    i = 1
    for k in range(LOG_SIZE - 2):
        out = styled_conv(out, f"convs.{2 * k}", latent[:, i], noise[2 * k + 1], upsample=True)
        out = styled_conv(out, f"convs.{2 * k + 1}", latent[:, i + 1], noise[2 * k + 2])
        skip = to_rgb(out, f"to_rgbs.{k}", latent[:, i + 2], skip)
        i += 2
    return skip


def facegen_images(G, z, psi=1.0):
    with torch.no_grad():
        return G.synthesis(G.mapping(z, None, truncation_psi=psi), noise_mode="const")


# ---------------------------------------------------------------------------------------------
# rosinality


def test_exported_rosinality_layout_has_rosinality_keys_and_shapes():
    G = Generator(z_dim=STYLE_DIM, w_dim=STYLE_DIM, img_resolution=RES, mapping_layers=N_MLP,
                  channel_base=256, channel_max=32)
    exported = rosinality_state_dict(G)
    assert {k: tuple(v.shape) for k, v in exported.items()} == rosinality_keys()
    assert torch.allclose(exported["convs.0.conv.blur.kernel"], make_kernel() * 4)


def test_rosinality_import_reproduces_reference_forward(tmp_path):
    sd = random_rosinality(seed=1)
    latent_avg = torch.randn(STYLE_DIM)
    torch.save({"g_ema": sd, "latent_avg": latent_avg}, tmp_path / "ros.pt")
    G, w_avg = load_rosinality(tmp_path / "ros.pt")
    assert torch.equal(w_avg, latent_avg)
    z = torch.randn(3, STYLE_DIM, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = rosinality_forward(sd, z)
        truncated = rosinality_forward(sd, z, truncation=0.7, truncation_latent=latent_avg)
    assert expected.shape == (3, 3, RES, RES) and expected.abs().max() > 0.1
    torch.testing.assert_close(facegen_images(G, z), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(facegen_images(G, z, psi=0.7), truncated, atol=1e-4, rtol=1e-4)


def test_rosinality_round_trip_is_exact(tmp_path):
    torch.manual_seed(3)
    G = Generator(z_dim=STYLE_DIM, w_dim=STYLE_DIM, img_resolution=RES, mapping_layers=N_MLP,
                  channel_base=256, channel_max=32).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(("noise_strength", "bias")):
                p.normal_(0, 0.3)
        G.mapping.w_avg.normal_()
    save_rosinality(G, tmp_path / "g.pt")
    G2, w_avg = load_generator(tmp_path / "g.pt")
    assert torch.equal(w_avg, G.mapping.w_avg)
    for key, value in G.state_dict().items():
        assert torch.equal(G2.state_dict()[key], value), key
    z = torch.randn(2, STYLE_DIM)
    torch.testing.assert_close(facegen_images(G2, z), facegen_images(G, z), atol=0, rtol=0)
    # the exported file also matches the independent rosinality forward
    sd = torch.load(tmp_path / "g.pt", weights_only=True)["g_ema"]
    with torch.no_grad():
        torch.testing.assert_close(facegen_images(G, z), rosinality_forward(sd, z), atol=1e-4, rtol=1e-4)


def test_rosinality_without_latent_avg_uses_mean_w_and_bad_layouts_raise(tmp_path):
    sd = random_rosinality(seed=4)
    torch.save({"g_ema": sd}, tmp_path / "no_avg.pt")
    G, w_avg = load_rosinality(tmp_path / "no_avg.pt")
    z = torch.randn(4096, STYLE_DIM, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(w_avg, G.mapping(z, None)[:, 0].mean(0).detach())

    broken = dict(sd)
    del broken["convs.2.noise.weight"]
    torch.save({"g_ema": broken}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match="convs.2.noise.weight"):
        load_rosinality(tmp_path / "broken.pt")
    odd_blur = dict(sd, **{"convs.0.conv.blur.kernel": torch.ones(4, 4) / 4})
    torch.save({"g_ema": odd_blur}, tmp_path / "blur.pt")
    with pytest.raises(CheckpointError, match="blur kernel"):
        load_rosinality(tmp_path / "blur.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="unknown checkpoint layout"):
        load_generator(tmp_path / "other.pt")


# ---------------------------------------------------------------------------------------------
# NVlabs pickles


def nvlabs_from_rosinality_test_side(sd, latent_avg):
    """NVlabs G_ema state dict for the same weights (the inverse of NVlabs-to-rosinality export_weights.py)."""
    nv = {}
    for i in range(N_MLP):
        nv[f"mapping.fc{i}.weight"], nv[f"mapping.fc{i}.bias"] = sd[f"style.{i + 1}.weight"], sd[f"style.{i + 1}.bias"]
    nv["mapping.w_avg"] = latent_avg
    nv["synthesis.b4.const"] = sd["input.input"][0]

    def layer(nv_name, ros, noise_idx):
        nv[f"{nv_name}.weight"] = sd[f"{ros}.conv.weight"][0]
        nv[f"{nv_name}.affine.weight"] = sd[f"{ros}.conv.modulation.weight"]
        nv[f"{nv_name}.affine.bias"] = sd[f"{ros}.conv.modulation.bias"]
        nv[f"{nv_name}.noise_strength"] = sd[f"{ros}.noise.weight"][0]
        nv[f"{nv_name}.bias"] = sd[f"{ros}.activate.bias"]
        nv[f"{nv_name}.noise_const"] = sd[f"noises.noise_{noise_idx}"][0, 0]
        nv[f"{nv_name}.resample_filter"] = make_kernel()

    def torgb(nv_name, ros):
        nv[f"{nv_name}.weight"] = sd[f"{ros}.conv.weight"][0]
        nv[f"{nv_name}.affine.weight"] = sd[f"{ros}.conv.modulation.weight"]
        nv[f"{nv_name}.affine.bias"] = sd[f"{ros}.conv.modulation.bias"]
        nv[f"{nv_name}.bias"] = sd[f"{ros}.bias"].flatten()

    layer("synthesis.b4.conv1", "conv1", 0)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k in range(1, LOG_SIZE - 1):
        res = 4 * 2 ** k
        nv[f"synthesis.b{res // 2}.resample_filter"] = make_kernel()
        layer(f"synthesis.b{res}.conv0", f"convs.{2 * k - 2}", 2 * k - 1)
        layer(f"synthesis.b{res}.conv1", f"convs.{2 * k - 1}", 2 * k)
        torgb(f"synthesis.b{res}.torgb", f"to_rgbs.{k - 1}")
    nv[f"synthesis.b{RES}.resample_filter"] = make_kernel()
    return nv


NVLABS_CLASSES = [("mapping", "MappingNetwork"), ("synthesis", "SynthesisNetwork"), ("torgb", "ToRGBLayer"),
                  ("fc", "FullyConnectedLayer"), ("affine", "FullyConnectedLayer"), ("conv", "SynthesisLayer"),
                  ("b", "SynthesisBlock")]
NVLABS_BUFFERS = ("w_avg", "resample_filter", "noise_const")


def write_nvlabs_pickle(path, nv_state, marker, init_kwargs):
    """Pickle dict(G, D, G_ema, ...) the way torch_utils.persistence does, with throwaway modules."""
    module_src = f"open({str(marker)!r}, 'w').write('module_src was executed')\n"
    persistence = types.ModuleType("torch_utils.persistence")
    networks = types.ModuleType("training.networks")
    dnnlib_util = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # NVlabs execs meta["module_src"] here
        raise AssertionError("never called while pickling")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    dnnlib_util.EasyDict = EasyDict

    class Persistent(torch.nn.Module):
        def __init__(self, class_name):
            super().__init__()
            self.class_name = class_name

        def __reduce__(self):
            meta = dict(type="class", version=6, module_src=module_src, class_name=self.class_name,
                        state=self.__dict__)
            return _reconstruct_persistent_obj, (meta,)

    Persistent.__module__ = "training.networks"
    networks.Persistent = Persistent

    root = Persistent("Generator")
    root._init_kwargs = EasyDict(init_kwargs)
    for key, value in nv_state.items():
        *path_parts, leaf = key.split(".")
        module = root
        for part in path_parts:
            if not hasattr(module, part):
                name = next(c for p, c in NVLABS_CLASSES if part.startswith(p))
                child = Persistent(name)
                child.weight_gain = np.float32(0.5)  # NVlabs keeps numpy scalars as attributes
                module.add_module(part, child)
            module = getattr(module, part)
        if leaf in NVLABS_BUFFERS:
            module.register_buffer(leaf, value.clone())
        else:
            module.register_parameter(leaf, torch.nn.Parameter(value.clone()))

    names = ["torch_utils", "torch_utils.persistence", "training", "training.networks", "dnnlib", "dnnlib.util"]
    fakes = [types.ModuleType("torch_utils"), persistence, types.ModuleType("training"), networks,
             types.ModuleType("dnnlib"), dnnlib_util]
    saved = {n: sys.modules.get(n) for n in names}
    sys.modules.update(dict(zip(names, fakes)))
    try:
        with open(path, "wb") as f:
            pickle.dump(dict(G=root, D=None, G_ema=root, augment_pipe=None,
                             training_set_kwargs=EasyDict(path="faces.zip", resolution=RES)), f)
    finally:
        for n, old in saved.items():
            if old is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = old


def test_nvlabs_pickle_import_reproduces_reference_without_running_its_code(tmp_path):
    sd = random_rosinality(seed=5)
    latent_avg = torch.randn(STYLE_DIM)
    marker = tmp_path / "executed.txt"
    init_kwargs = dict(z_dim=STYLE_DIM, c_dim=0, w_dim=STYLE_DIM, img_resolution=RES, img_channels=3,
                       mapping_kwargs={"num_layers": N_MLP},
                       synthesis_kwargs={"channel_base": 256, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None})
    write_nvlabs_pickle(tmp_path / "net.pkl", nvlabs_from_rosinality_test_side(sd, latent_avg), marker, init_kwargs)
    assert "training.networks" not in sys.modules and "torch_utils.persistence" not in sys.modules

    G, w_avg = load_nvlabs_pkl(tmp_path / "net.pkl")
    assert not marker.exists()
    assert "training.networks" not in sys.modules
    assert torch.equal(w_avg, latent_avg)
    z = torch.randn(3, STYLE_DIM, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        expected = rosinality_forward(sd, z, truncation=0.5, truncation_latent=latent_avg)
    torch.testing.assert_close(facegen_images(G, z, psi=0.5), expected, atol=1e-4, rtol=1e-4)
    G2, _ = load_generator(tmp_path / "net.pkl")  # dispatch on content
    torch.testing.assert_close(facegen_images(G2, z), facegen_images(G, z), atol=0, rtol=0)

    other = dict(init_kwargs, synthesis_kwargs=dict(init_kwargs["synthesis_kwargs"], architecture="resnet"))
    write_nvlabs_pickle(tmp_path / "resnet.pkl", nvlabs_from_rosinality_test_side(sd, latent_avg), marker, other)
    with pytest.raises(CheckpointError, match="skip architecture"):
        load_nvlabs_pkl(tmp_path / "resnet.pkl")


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickles_that_run_code_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pkl", "wb") as f:
        pickle.dump({"G_ema": _Exploit(marker)}, f)
    with pytest.raises(CheckpointError, match="system"):
        load_generator(tmp_path / "evil.pkl")
    torch.save({"g_ema": {"x": _Exploit(marker)}}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="system"):
        load_generator(tmp_path / "evil.pt")
    with open(tmp_path / "eval.pkl", "wb") as f:
        pickle.dump({"G_ema": types.SimpleNamespace()}, f)
    with pytest.raises(CheckpointError, match="types.SimpleNamespace"):
        load_foreign(tmp_path / "eval.pkl")
    assert not marker.exists()


def test_lightning_checkpoint_is_read_as_state_dict(tmp_path):
    torch.manual_seed(7)
    G = Generator(z_dim=8, w_dim=8, img_resolution=32, img_channels=1, c_dim=2, mapping_layers=2,
                  channel_base=256, channel_max=32, conv_clamp=256).eval()
    state = {f"G_ema.{k}": v for k, v in G.state_dict().items()}
    state.update({f"G.{k}": v + 1 for k, v in G.state_dict().items()})
    torch.save({"state_dict": state, "hyper_parameters": {"conv_clamp": 256, "r1_gamma": 1.0},
                "pytorch-lightning_version": "2.6.6"}, tmp_path / "last.ckpt")
    G2, _ = load_generator(tmp_path / "last.ckpt")
    assert G2.init_kwargs == dict(G.init_kwargs, num_fp16_res=0)
    z, c = torch.randn(2, 8), torch.eye(2)
    with torch.no_grad():
        torch.testing.assert_close(G2(z, c), G(z, c), atol=0, rtol=0)


def test_checkpoint_written_by_lightning_for_the_stylegan2_module(tmp_path):
    import lightning.pytorch as pl
    from omegaconf import OmegaConf

    from facegen.models.stylegan2.module import StyleGAN2

    torch.manual_seed(8)
    # betas as the Hydra entry point passes it (a ListConfig): Lightning pickles it into hyper_parameters
    # with OmegaConf's protocol-2 metadata (typing.Any, __builtin__ names, defaultdict), which must load
    module = StyleGAN2(img_resolution=32, generator=dict(z_dim=16, w_dim=16, mapping_layers=2, channel_base=128,
                                                         channel_max=16), grid={"every_kimg": 0}, augment=None,
                       optimizer=OmegaConf.create({"betas": [0.0, 0.99]}))
    images = torch.utils.data.TensorDataset(torch.rand(8, 3, 32, 32) * 2 - 1)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, torch.utils.data.DataLoader(images, batch_size=4))
    trainer.save_checkpoint(tmp_path / "last.ckpt")  # callback states, hparams, optimiser states included
    G, w_avg = load_generator(tmp_path / "last.ckpt")
    assert G.init_kwargs["conv_clamp"] == 256 and torch.equal(w_avg, module.G_ema.mapping.w_avg)
    z = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(G(z), module.G_ema.eval()(z), atol=0, rtol=0)


def test_generator_file_round_trip_in_float16(tmp_path):
    """save_generator writes G alone in float16 (the committed face-world generator's format); load_generator
    reads it back in float32 with the same architecture and nearly the same images."""
    from facegen.models.stylegan2.formats import save_generator

    torch.manual_seed(3)
    G = Generator(z_dim=16, w_dim=16, img_resolution=32, mapping_layers=2, channel_base=256, channel_max=32,
                  num_fp16_res=2, conv_clamp=256, channels_last=True).eval()
    save_generator(G, tmp_path / "g.pt", kimg=1.5, source="test")
    blob = torch.load(tmp_path / "g.pt", weights_only=True)
    assert blob["meta"] == {"kimg": 1.5, "source": "test"}
    assert all(v.dtype == torch.float16 for k, v in blob["weights"].items() if v.is_floating_point())
    G2, w_avg = load_generator(tmp_path / "g.pt")
    assert G2.init_kwargs["conv_clamp"] == 256 and G2.mapping.w_avg.dtype == torch.float32
    z = torch.randn(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(G2(z), G(z), rtol=0, atol=2e-2)
