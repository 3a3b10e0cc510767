#!/usr/bin/python3
"""Reference results for ImageQuantize, computed as ComfyUI computes them:
its node's code (comfy_extras/nodes_post_processing.py) written out, calling
PIL's quantizer, which has changed over Pillow's versions; these are Pillow
13.0's results (the Pillow a ComfyUI installed today gets).

Run with Debian's interpreter (python3-torch, python3-numpy) and Pillow 13.0
on the path (pip install --target DIR pillow==13.0.0):

    PYTHONPATH=DIR /usr/bin/python3 tests/data/comfy/make_quantize_reference.py

It writes quantize.json and quantize.bin next to itself, in the format of
make_reference.py's files; tests/test_comfy.cpp runs the node on each case.
"""
import json
import math
import os
import sys

import numpy as np
import PIL
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def quantize_one(pixels, colors, dither):  # ImageQuantize on one [H, W, 3] uint8 array
    im = Image.fromarray(pixels)
    pal_im = im.quantize(colors=colors)
    if dither == "none":
        out = im.quantize(palette=pal_im, dither=Image.Dither.NONE)
    elif dither == "floyd-steinberg":
        out = im.quantize(palette=pal_im, dither=Image.Dither.FLOYDSTEINBERG)
    else:  # ComfyUI's ordered dither: a Bayer matrix added, then the palette's nearest colours
        order = int(dither.split("-")[-1])

        def normalized_bayer_matrix(n):
            if n == 0:
                return np.zeros((1, 1), "float32")
            q = 4 ** n
            m = q * normalized_bayer_matrix(n - 1)
            return np.bmat(((m - 1.5, m + 0.5), (m + 1.5, m - 0.5))) / q

        spread = 2 * 256 / (len(pal_im.getpalette()) // 3)
        matrix = torch.from_numpy(np.asarray(spread * normalized_bayer_matrix(int(math.log2(order))) + 0.5))
        result = torch.from_numpy(np.array(im).astype(np.float32))
        tiled = matrix.tile(math.ceil(result.shape[0] / matrix.shape[0]), math.ceil(result.shape[1] / matrix.shape[1]))
        result.add_(tiled.unsqueeze(-1)[:result.shape[0], :result.shape[1]]).clamp_(0, 255)
        out = Image.fromarray(result.to(dtype=torch.uint8).numpy()).quantize(palette=pal_im, dither=Image.Dither.NONE)
    return np.array(out.convert("RGB"))


def quantize(image, colors, dither):  # [B, H, W, 3] in [0, 1], as the node converts it
    out = [torch.tensor(quantize_one((i * 255).to(torch.uint8).numpy(), colors, dither)).float() / 255 for i in image]
    return torch.stack(out)


def many_colours():  # 272 x 256 pixels of 69632 colours, uint8 [H, W, 3]; the test makes the same
    y, x = torch.meshgrid(torch.arange(256), torch.arange(272), indexing="ij")
    return torch.stack([x % 256, y, (7 * x + 13 * y) % 256], -1).to(torch.uint8)


def fnv1a(data):  # 64-bit FNV-1a of bytes
    h = 1469598103934665603
    for byte in data:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def main():
    g = torch.Generator().manual_seed(20261207)
    tensors, cases = {}, []

    def image_t(name, t):  # [B, H, W, C] -> [B, C, H, W]
        tensors[name] = t.movedim(-1, 1).contiguous()
        return name

    def case(inputs, out, **widgets):
        name = image_t(f"ImageQuantize#{len(cases)}.out0", out)
        cases.append({"node": "ImageQuantize", "tensors": inputs, "widgets": widgets, "outputs": [name],
                      "tolerance": 0.0})

    noise = torch.floor(torch.rand(2, 13, 17, 3, generator=g) * 256).clamp(max=255) / 255.0
    yy, xx = torch.meshgrid(torch.arange(30.0), torch.arange(40.0), indexing="ij")
    scene = torch.stack([0.5 + 0.5 * torch.sin(xx / 6), 0.5 + 0.5 * torch.cos(yy / 5), (xx + yy) / 70], -1)
    scene = (torch.floor(scene.clamp(0, 1) * 255) / 255).unsqueeze(0)
    image_t("noise", noise)
    image_t("scene", scene)
    for colors, dithers in ((8, ("none", "floyd-steinberg", "bayer-2", "bayer-4", "bayer-8", "bayer-16")),
                            (1, ("none", "floyd-steinberg")), (37, ("floyd-steinberg", "bayer-8")),
                            (256, ("none", "floyd-steinberg"))):
        for dither in dithers:
            case({"image": "scene"}, quantize(scene, colors, dither), colors=colors, dither=dither)
    for colors, dither in ((16, "none"), (5, "floyd-steinberg"), (200, "bayer-4")):
        case({"image": "noise"}, quantize(noise, colors, dither), colors=colors, dither=dither)
    # More colours than PIL's table holds (65536), so they lose bits: too
    # large to keep, the test makes the input and compares a hash of the bytes.
    many = many_colours().numpy()
    many_cases = [{"colors": c, "dither": d, "fnv1a": fnv1a(quantize_one(many, c, d).tobytes())}
                  for c, d in ((64, "none"), (64, "floyd-steinberg"), (12, "bayer-4"))]

    offset, index = 0, {}
    with open(os.path.join(HERE, "quantize.bin"), "wb") as f:
        for name, t in tensors.items():
            data = t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
            f.write(data)
            index[name] = {"shape": list(t.shape), "offset": offset}
            offset += len(data)
    made_with = {"torch": torch.__version__, "PIL": PIL.__version__, "numpy": np.__version__}
    with open(os.path.join(HERE, "quantize.json"), "w") as f:
        json.dump({"made_with": made_with, "tensors": index, "cases": cases, "many_colours": many_cases}, f, indent=1)
    print(f"{len(cases)} cases, {len(tensors)} tensors, {offset} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
