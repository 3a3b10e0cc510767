#!/usr/bin/python3
"""Reference results for the comfy plugin's nodes, computed as ComfyUI
computes them: ComfyUI's formulas (nodes.py and comfy_extras/, v0.25 and
later) written out with the libraries ComfyUI calls (torch, PIL, scipy,
kornia), on small seeded inputs.

Run with Debian's interpreter, which has python3-torch (apt-get install
python3-torch python3-pil python3-scipy) and kornia on the path
(pip install --target DIR kornia==0.7.4 kornia_rs --no-deps; ComfyUI asks
for kornia 0.7.1 or later):

    PYTHONPATH=DIR /usr/bin/python3 tests/data/comfy/make_reference.py

It writes reference.json (the cases: node, widget values, the names of the
input and output tensors) and reference.bin (every tensor as float32, Cozy's
layout: IMAGE [B, C, H, W], MASK [B, 1, H, W]) next to itself. The test
(tests/test_comfy.cpp) runs each node on the inputs and compares.
"""
import json
import math
import os
import sys

import numpy as np
import PIL
import scipy
import scipy.ndimage
import torch
import torch.nn.functional as F
from PIL import Image

import kornia
from kornia.filters import canny
from kornia.morphology import bottom_hat, closing, dilation, erosion, gradient, opening, top_hat

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)

# --------------------------------------------------------------- ComfyUI's helpers (layout [B, H, W, C])


def lanczos(samples, width, height):  # comfy.utils.lanczos, on [B, C, H, W]
    out = []
    for image in samples:
        a = np.clip(255. * image.movedim(0, -1).cpu().numpy(), 0, 255).astype(np.uint8)
        if a.shape[-1] == 1:
            a = a[..., 0]
        im = Image.fromarray(a).resize((width, height), resample=Image.Resampling.LANCZOS)
        r = torch.from_numpy(np.array(im).astype(np.float32) / 255.0)
        out.append(r.unsqueeze(0) if r.ndim == 2 else r.movedim(-1, 0))
    return torch.stack(out)


def common_upscale(samples, width, height, method, crop):  # [B, C, H, W]
    if crop == "center":
        old_w, old_h = samples.shape[-1], samples.shape[-2]
        old_aspect, new_aspect = old_w / old_h, width / height
        x = y = 0
        if old_aspect > new_aspect:
            x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
        elif old_aspect < new_aspect:
            y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
        samples = samples.narrow(-2, y, old_h - y * 2).narrow(-1, x, old_w - x * 2)
    if method == "lanczos":
        return lanczos(samples, width, height)
    return F.interpolate(samples, size=(height, width), mode=method)


def repeat_to_batch_size(t, n):
    if t.shape[0] > n:
        return t[:n]
    if t.shape[0] < n:
        return t.repeat([math.ceil(n / t.shape[0])] + [1] * (t.ndim - 1))[:n]
    return t


def alpha_fix(destination, source):  # the source made the destination's channels
    if destination.shape[-1] < source.shape[-1]:
        source = source[..., :destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        source = F.pad(source, (0, 1))
        source[..., -1] = 1.0
    return destination, source


def gaussian_kernel(size, sigma):
    x, y = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    d = torch.sqrt(x * x + y * y)
    g = torch.exp(-(d * d) / (2.0 * sigma * sigma))
    return g / g.sum()


# --------------------------------------------------------------- the nodes, [B, H, W, C] in and out

def scale(image, method, width, height, crop):
    s = image.movedim(-1, 1)
    if width == 0:
        width = max(1, round(s.shape[3] * height / s.shape[2]))
    elif height == 0:
        height = max(1, round(s.shape[2] * width / s.shape[3]))
    return common_upscale(s, width, height, method, crop).movedim(1, -1)


def scale_by(image, method, k):
    s = image.movedim(-1, 1)
    return common_upscale(s, round(s.shape[3] * k), round(s.shape[2] * k), method, "disabled").movedim(1, -1)


def total_pixels(image, method, megapixels, steps):
    s = image.movedim(-1, 1)
    k = math.sqrt(megapixels * 1024 * 1024 / (s.shape[3] * s.shape[2]))
    w = round(s.shape[3] * k / steps) * steps
    h = round(s.shape[2] * k / steps) * steps
    return common_upscale(s, int(w), int(h), method, "disabled").movedim(1, -1)


def max_dimension(image, method, size):
    h, w = image.shape[1], image.shape[2]
    if h > w:
        w, h = round((w / h) * size), size
    elif w > h:
        h, w = round((h / w) * size), size
    else:
        h = w = size
    return common_upscale(image.movedim(-1, 1), w, h, method, "disabled").movedim(1, -1)


def resize_and_pad(image, tw, th, color, method):
    b, h, w, c = image.shape
    k = min(tw / w, th / h)
    nw, nh = int(w * k), int(h * k)
    r = common_upscale(image.permute(0, 3, 1, 2), nw, nh, method, "disabled")
    out = torch.full((b, c, th, tw), 0.0 if color == "black" else 1.0)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    out[:, :, y0:y0 + nh, x0:x0 + nw] = r
    return out.permute(0, 2, 3, 1)


def blur(image, radius, sigma):
    c = image.shape[-1]
    size = radius * 2 + 1
    kernel = gaussian_kernel(size, sigma).repeat(c, 1, 1).unsqueeze(1)
    x = F.pad(image.permute(0, 3, 1, 2), (radius,) * 4, "reflect")
    y = F.conv2d(x, kernel, padding=size // 2, groups=c)[:, :, radius:-radius, radius:-radius]
    return y.permute(0, 2, 3, 1)


def sharpen(image, radius, sigma, alpha):
    c = image.shape[-1]
    size = radius * 2 + 1
    kernel = gaussian_kernel(size, sigma) * -(alpha * 10)
    m = size // 2
    kernel[m, m] = kernel[m, m] - kernel.sum() + 1.0
    kernel = kernel.repeat(c, 1, 1).unsqueeze(1)
    x = F.pad(image.permute(0, 3, 1, 2), (radius,) * 4, "reflect")
    y = F.conv2d(x, kernel, padding=m, groups=c)[:, :, radius:-radius, radius:-radius]
    return torch.clamp(y.permute(0, 2, 3, 1), 0, 1)


def blend(image1, image2, factor, mode):
    image1, image2 = alpha_fix(image1, image2)
    if image1.shape != image2.shape:
        image2 = common_upscale(image2.permute(0, 3, 1, 2), image1.shape[2], image1.shape[1], "bicubic", "center")
        image2 = image2.permute(0, 2, 3, 1)
    a, b = image1, image2
    if mode == "normal":
        m = b
    elif mode == "multiply":
        m = a * b
    elif mode == "screen":
        m = 1 - (1 - a) * (1 - b)
    elif mode == "overlay":
        m = torch.where(a <= 0.5, 2 * a * b, 1 - 2 * (1 - a) * (1 - b))
    elif mode == "soft_light":
        g = torch.where(a <= 0.25, ((16 * a - 12) * a + 4) * a, torch.sqrt(a))
        m = torch.where(b <= 0.5, a - (1 - 2 * b) * a * (1 - a), a + (2 * b - 1) * (g - a))
    else:
        m = a - b
    return torch.clamp(a * (1 - factor) + m * factor, 0, 1)


def add_noise(image, seed, strength):
    g = torch.manual_seed(seed)
    return torch.clip(image + strength * torch.randn(image.size(), generator=g, device="cpu").to(image), 0.0, 1.0)


def crop(image, width, height, x, y):
    x, y = min(x, image.shape[2] - 1), min(y, image.shape[1] - 1)
    return image[:, y:y + height, x:x + width, :]


def pad_for_outpaint(image, left, top, right, bottom, feathering):
    d1, d2, d3, d4 = image.size()
    out = torch.ones((d1, d2 + top + bottom, d3 + left + right, d4)) * 0.5
    out[:, top:top + d2, left:left + d3, :] = image
    mask = torch.ones((d2 + top + bottom, d3 + left + right))
    t = torch.zeros((d2, d3))
    if feathering > 0 and feathering * 2 < d2 and feathering * 2 < d3:
        for i in range(d2):
            for j in range(d3):
                d = min(i if top != 0 else d2, d2 - i if bottom != 0 else d2, j if left != 0 else d3,
                        d3 - j if right != 0 else d3)
                if d < feathering:
                    v = (feathering - d) / feathering
                    t[i, j] = v * v
    mask[top:top + d2, left:left + d3] = t
    return out, mask.unsqueeze(0)


def stitch(image1, image2, direction, match, spacing, color):
    if image1.shape[0] != image2.shape[0]:
        n = max(image1.shape[0], image2.shape[0])
        if image1.shape[0] < n:
            image1 = torch.cat([image1, image1[-1:].repeat(n - image1.shape[0], 1, 1, 1)])
        if image2.shape[0] < n:
            image2 = torch.cat([image2, image2[-1:].repeat(n - image2.shape[0], 1, 1, 1)])
    horizontal = direction in ("left", "right")
    if match:
        h1, w1 = image1.shape[1:3]
        h2, w2 = image2.shape[1:3]
        aspect = w2 / h2
        tw, th = (int(h1 * aspect), h1) if horizontal else (w1, int(w1 / aspect))
        image2 = common_upscale(image2.movedim(-1, 1), tw, th, "lanczos", "disabled").movedim(1, -1)
    colors = {"white": 1.0, "black": 0.0, "red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}
    cv = colors[color]
    if not match:
        pv = 0.0 if isinstance(cv, tuple) else cv
        dim = 1 if horizontal else 2
        target = max(image1.shape[dim], image2.shape[dim])

        def pad(t):
            p = target - t.shape[dim]
            if p == 0:
                return t
            spec = (0, 0, 0, 0, p // 2, p - p // 2) if dim == 1 else (0, 0, p // 2, p - p // 2)
            return F.pad(t, spec, mode="constant", value=pv)
        image1, image2 = pad(image1), pad(image2)
    if image1.shape[-1] != image2.shape[-1]:
        c = max(image1.shape[-1], image2.shape[-1])
        widen = lambda t: t if t.shape[-1] == c else torch.cat([t, torch.ones(*t.shape[:-1], c - t.shape[-1])], dim=-1)
        image1, image2 = widen(image1), widen(image2)
    if spacing > 0:
        spacing += spacing % 2
        shape = (image1.shape[0], max(image1.shape[1], image2.shape[1]), spacing, image1.shape[-1]) if horizontal \
            else (image1.shape[0], spacing, max(image1.shape[2], image2.shape[2]), image1.shape[-1])
        gap = torch.full(shape, 0.0)
        if isinstance(cv, tuple):
            for i, c in enumerate(cv):
                if i < gap.shape[-1]:
                    gap[..., i] = c
        else:
            gap[..., :min(3, gap.shape[-1])] = cv
        if gap.shape[-1] == 4:
            gap[..., 3] = 1.0
    parts = [image2, image1] if direction in ("left", "up") else [image1, image2]
    if spacing > 0:
        parts.insert(1, gap)
    return torch.cat(parts, dim=2 if horizontal else 1)


def batch(image1, image2):
    if image1.shape[-1] != image2.shape[-1]:
        if image1.shape[-1] > image2.shape[-1]:
            image2 = F.pad(image2, (0, 1), mode="constant", value=1.0)
        else:
            image1 = F.pad(image1, (0, 1), mode="constant", value=1.0)
    if image1.shape[1:] != image2.shape[1:]:
        image2 = common_upscale(image2.movedim(-1, 1), image1.shape[2], image1.shape[1], "bilinear", "center").movedim(1, -1)
    return torch.cat((image1, image2), dim=0)


def from_batch(image, index, length):
    if index < 0:
        index += image.shape[0]
    index = max(0, min(image.shape[0] - 1, index))
    length = min(image.shape[0] - index, length)
    return image[index:index + length].clone()


def color_to_mask(image, color):
    t = (torch.clamp(image, 0, 1.0) * 255.0).round().to(torch.int)
    t = torch.bitwise_left_shift(t[:, :, :, 0], 16) + torch.bitwise_left_shift(t[:, :, :, 1], 8) + t[:, :, :, 2]
    return torch.where(t == color, 1.0, 0).float()


def mask_composite(destination, source, x, y, op):
    out = destination.clone()
    right, bottom = min(x + source.shape[-1], destination.shape[-1]), min(y + source.shape[-2], destination.shape[-2])
    s = source[:, :bottom - y, :right - x]
    d = out[:, y:bottom, x:right]
    if op == "multiply":
        r = d * s
    elif op == "add":
        r = d + s
    elif op == "subtract":
        r = d - s
    elif op == "and":
        r = torch.bitwise_and(d.round().bool(), s.round().bool()).float()
    elif op == "or":
        r = torch.bitwise_or(d.round().bool(), s.round().bool()).float()
    else:
        r = torch.bitwise_xor(d.round().bool(), s.round().bool()).float()
    out[:, y:bottom, x:right] = r
    return torch.clamp(out, 0.0, 1.0)


def feather(mask, left, top, right, bottom):
    out = mask.clone()
    left, right = min(left, out.shape[-1]), min(right, out.shape[-1])
    top, bottom = min(top, out.shape[-2]), min(bottom, out.shape[-2])
    for x in range(left):
        out[:, :, x] *= (x + 1.0) / left
    for x in range(right):
        out[:, :, -x] *= (x + 1) / right
    for y in range(top):
        out[:, y, :] *= (y + 1) / top
    for y in range(bottom):
        out[:, -y, :] *= (y + 1) / bottom
    return out


def grow(mask, expand, tapered):
    c = 0 if tapered else 1
    kernel = np.array([[c, 1, c], [1, 1, 1], [c, 1, c]])
    out = []
    for m in mask:
        o = m.numpy()
        for _ in range(abs(expand)):
            o = scipy.ndimage.grey_erosion(o, footprint=kernel) if expand < 0 else scipy.ndimage.grey_dilation(o, footprint=kernel)
        out.append(torch.from_numpy(o))
    return torch.stack(out, dim=0)


def composite(destination, source, x, y, mask, resize):  # [B, C, H, W], multiplier 1
    if resize:
        source = F.interpolate(source, size=(destination.shape[-2], destination.shape[-1]), mode="bilinear")
    source = repeat_to_batch_size(source, destination.shape[0])
    x = max(-source.shape[-1], min(x, destination.shape[-1]))
    y = max(-source.shape[-2], min(y, destination.shape[-2]))
    left, top = x, y
    right, bottom = left + source.shape[-1], top + source.shape[-2]
    if mask is None:
        mask = torch.ones_like(source)
    else:
        mask = F.interpolate(mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1])), size=(source.shape[-2], source.shape[-1]), mode="bilinear")
        mask = repeat_to_batch_size(mask, source.shape[0])
    vw, vh = destination.shape[-1] - left + min(0, x), destination.shape[-2] - top + min(0, y)
    mask = mask[:, :, :vh, :vw]
    inverse = torch.ones_like(mask) - mask
    part = mask * source[..., :vh, :vw]
    destination[..., top:bottom, left:right] = part + inverse * destination[..., top:bottom, left:right]
    return destination


def image_composite_masked(destination, source, x, y, resize, mask=None):
    destination, source = alpha_fix(destination, source)
    d = destination.clone().movedim(-1, 1)
    return composite(d, source.movedim(-1, 1), x, y, mask, resize).movedim(1, -1)


def porter_duff(src, sa, dst, da, mode):
    sa, da = 1 - sa, 1 - da
    s, t = src * sa, dst * da
    if mode == "ADD":
        a, im = torch.clamp(sa + da, 0, 1), torch.clamp(s + t, 0, 1)
    elif mode == "CLEAR":
        a, im = torch.zeros_like(da), torch.zeros_like(t)
    elif mode == "DARKEN":
        a, im = sa + da - sa * da, (1 - da) * s + (1 - sa) * t + torch.min(s, t)
    elif mode == "DST":
        a, im = da, t
    elif mode == "DST_ATOP":
        a, im = sa, sa * t + (1 - da) * s
    elif mode == "DST_IN":
        a, im = sa * da, t * sa
    elif mode == "DST_OUT":
        a, im = (1 - sa) * da, (1 - sa) * t
    elif mode == "DST_OVER":
        a, im = da + (1 - da) * sa, t + (1 - da) * s
    elif mode == "LIGHTEN":
        a, im = sa + da - sa * da, (1 - da) * s + (1 - sa) * t + torch.max(s, t)
    elif mode == "MULTIPLY":
        a, im = sa * da, s * t
    elif mode == "OVERLAY":
        a, im = sa + da - sa * da, torch.where(2 * t < da, 2 * s * t, sa * da - 2 * (da - s) * (sa - t))
    elif mode == "SCREEN":
        a, im = sa + da - sa * da, s + t - s * t
    elif mode == "SRC":
        a, im = sa, s
    elif mode == "SRC_ATOP":
        a, im = da, da * s + (1 - sa) * t
    elif mode == "SRC_IN":
        a, im = sa * da, s * da
    elif mode == "SRC_OUT":
        a, im = (1 - da) * sa, (1 - da) * s
    elif mode == "SRC_OVER":
        a, im = sa + (1 - sa) * da, s + (1 - sa) * t
    else:
        a, im = (1 - da) * sa + (1 - sa) * da, (1 - da) * s + (1 - sa) * t
    im = torch.where(a > 1e-5, im / a, torch.zeros_like(im))
    return torch.clamp(im, 0, 1), 1 - a


def porter_duff_node(source, source_alpha, destination, destination_alpha, mode):
    images, alphas = [], []
    for i in range(min(len(source), len(source_alpha), len(destination), len(destination_alpha))):
        src, dst = source[i], destination[i]
        sa, da = source_alpha[i].unsqueeze(2), destination_alpha[i].unsqueeze(2)
        if da.shape[:2] != dst.shape[:2]:
            da = common_upscale(da.unsqueeze(0).permute(0, 3, 1, 2), dst.shape[1], dst.shape[0], "bicubic", "center").permute(0, 2, 3, 1).squeeze(0)
        if src.shape != dst.shape:
            src = common_upscale(src.unsqueeze(0).permute(0, 3, 1, 2), dst.shape[1], dst.shape[0], "bicubic", "center").permute(0, 2, 3, 1).squeeze(0)
        if sa.shape != da.shape:
            sa = common_upscale(sa.unsqueeze(0).permute(0, 3, 1, 2), da.shape[1], da.shape[0], "bicubic", "center").permute(0, 2, 3, 1).squeeze(0)
        im, a = porter_duff(src, sa, dst, da, mode)
        images.append(im)
        alphas.append(a.squeeze(2))
    return torch.stack(images), torch.stack(alphas)


def join_alpha(image, alpha):
    n = max(len(image), len(alpha))
    image, alpha = repeat_to_batch_size(image, n), repeat_to_batch_size(alpha, n)
    alpha = 1.0 - F.interpolate(alpha.reshape((-1, 1, alpha.shape[-2], alpha.shape[-1])), size=image.shape[1:3], mode="bilinear").squeeze(1)
    return torch.cat((image[..., :3], alpha.unsqueeze(-1)), dim=-1)


def morphology(image, op, k):
    kernel = torch.ones(k, k)
    x = image.movedim(-1, 1)
    f = {"erode": erosion, "dilate": dilation, "open": opening, "close": closing, "gradient": gradient,
         "top_hat": top_hat, "bottom_hat": bottom_hat}[op]
    return f(x, kernel).movedim(1, -1)


# --------------------------------------------------------------- cases

def main():
    g = torch.Generator().manual_seed(20261207)
    rand = lambda *shape: torch.rand(*shape, generator=g)

    def levels(*shape):  # 8-bit levels, as images read from files are
        return torch.floor(rand(*shape) * 256).clamp(max=255) / 255.0

    rgb = levels(2, 13, 17, 3)
    rgb_b = levels(1, 9, 11, 3)
    rgba = torch.cat([levels(1, 13, 17, 3), rand(1, 13, 17, 1)], -1)
    smooth = rand(1, 12, 16, 3)
    mask = rand(2, 13, 17)
    mask_b = rand(1, 6, 9)
    binary = (rand(1, 13, 17) > 0.6).float()

    tensors = {}
    cases = []

    def image_t(name, t):  # [B, H, W, C] -> [B, C, H, W]
        tensors[name] = t.movedim(-1, 1).contiguous()
        return name

    def mask_t(name, t):  # [B, H, W] or [H, W] -> [B, 1, H, W]
        t = t.reshape(-1, t.shape[-2], t.shape[-1])
        tensors[name] = t.unsqueeze(1).contiguous()
        return name

    for name, t in (("rgb", rgb), ("rgb_b", rgb_b), ("rgba", rgba), ("smooth", smooth)):
        image_t(name, t)
    for name, t in (("mask", mask), ("mask_b", mask_b), ("binary", binary)):
        mask_t(name, t)

    def case(node, inputs, outputs, tolerance=1e-6, **widgets):
        key = f"{node}#{len(cases)}"
        names = []
        for i, (kind, value) in enumerate(outputs):
            names.append((image_t if kind == "IMAGE" else mask_t)(f"{key}.out{i}", value))
        cases.append({"node": node, "tensors": inputs, "widgets": widgets, "outputs": names, "tolerance": tolerance})

    methods = ["nearest-exact", "bilinear", "area", "bicubic", "lanczos"]
    for m in methods:
        tol = 1e-6
        for w, h, c in ((23, 9, "disabled"), (7, 5, "center"), (0, 20, "disabled"), (30, 0, "center")):
            out = scale(rgb, m, w, h, c)
            if m == "bicubic":
                out = out.clamp(0, 1)
            case("ImageScale", {"image": "rgb"}, [("IMAGE", out)], tol, upscale_method=m, width=w, height=h, crop=c)
        for k in (1.5, 0.37):
            out = scale_by(rgb, m, k)
            case("ImageScaleBy", {"image": "rgb"}, [("IMAGE", out.clamp(0, 1) if m == "bicubic" else out)], tol,
                 upscale_method=m, scale_by=k)
        case("ImageScale", {"image": "rgba"}, [("IMAGE", scale(rgba, m, 9, 21, "disabled").clamp(0, 1))], tol,
             upscale_method=m, width=9, height=21, crop="disabled")
    case("ImageScaleToTotalPixels", {"image": "rgb"}, [("IMAGE", total_pixels(rgb, "area", 0.01, 8))],
         upscale_method="area", megapixels=0.01, resolution_steps=8)
    case("ImageScaleToTotalPixels", {"image": "rgb"}, [("IMAGE", total_pixels(rgb, "lanczos", 0.01, 1))],
         upscale_method="lanczos", megapixels=0.01, resolution_steps=1)
    for m in ("area", "lanczos", "nearest-exact"):
        case("ImageScaleToMaxDimension", {"image": "rgb"}, [("IMAGE", max_dimension(rgb, m, 20))], upscale_method=m,
             largest_size=20)
    for m in ("area", "bicubic", "nearest-exact", "bilinear", "lanczos"):
        for color in ("white", "black"):
            out = resize_and_pad(rgb, 32, 20, color, m)
            case("ResizeAndPadImage", {"image": "rgb"}, [("IMAGE", out.clamp(0, 1) if m == "bicubic" else out)],
                 target_width=32, target_height=20, padding_color=color, interpolation=m)
    case("ImageInvert", {"image": "rgb"}, [("IMAGE", 1.0 - rgb)])
    for r, s in ((1, 1.0), (3, 0.5), (5, 2.0)):
        case("ImageBlur", {"image": "smooth"}, [("IMAGE", blur(smooth, r, s))], 2e-6, blur_radius=r, sigma=s)
    for r, s, a in ((1, 1.0, 1.0), (2, 0.7, 0.3)):
        case("ImageSharpen", {"image": "smooth"}, [("IMAGE", sharpen(smooth, r, s, a))], 2e-6, sharpen_radius=r,
             sigma=s, alpha=a)
    for mode in ("normal", "multiply", "screen", "overlay", "soft_light", "difference"):
        case("ImageBlend", {"image1": "rgb", "image2": "smooth"}, [("IMAGE", blend(rgb, smooth, 0.35, mode))], 2e-6,
             blend_factor=0.35, blend_mode=mode)
    case("ImageBlend", {"image1": "rgba", "image2": "rgb"}, [("IMAGE", blend(rgba, rgb, 0.5, "multiply"))],
         blend_factor=0.5, blend_mode="multiply")
    case("ImageAddNoise", {"image": "rgb"}, [("IMAGE", add_noise(rgb, 42, 0.3))], seed=42, strength=0.3)
    case("ImageCrop", {"image": "rgb"}, [("IMAGE", crop(rgb, 8, 100, 5, 3))], width=8, height=100, x=5, y=3)
    case("ImageCrop", {"image": "rgb"}, [("IMAGE", crop(rgb, 4, 4, 40, 40))], width=4, height=4, x=40, y=40)
    img, m = pad_for_outpaint(rgb, 8, 0, 16, 8, 4)
    case("ImagePadForOutpaint", {"image": "rgb"}, [("IMAGE", img), ("MASK", m)], left=8, top=0, right=16, bottom=8,
         feathering=4)
    img, m = pad_for_outpaint(rgb, 0, 3, 0, 0, 40)
    case("ImagePadForOutpaint", {"image": "rgb"}, [("IMAGE", img), ("MASK", m)], left=0, top=3, right=0, bottom=0,
         feathering=40)
    case("ImageFlip", {"image": "rgb"}, [("IMAGE", torch.flip(rgb, dims=[1]))], flip_method="x-axis: vertically")
    case("ImageFlip", {"image": "rgb"}, [("IMAGE", torch.flip(rgb, dims=[2]))], flip_method="y-axis: horizontally")
    for k, r in enumerate(("none", "90 degrees", "180 degrees", "270 degrees")):
        case("ImageRotate", {"image": "rgb"}, [("IMAGE", torch.rot90(rgb, k=k, dims=[2, 1]))], rotation=r)
    for direction, match, spacing, color in (("right", True, 0, "white"), ("down", True, 4, "red"),
                                             ("left", False, 3, "black"), ("up", False, 0, "white"),
                                             ("right", False, 2, "blue")):
        case("ImageStitch", {"image1": "rgb", "image2": "rgb_b"}, [("IMAGE", stitch(rgb, rgb_b, direction, match, spacing, color))],
             direction=direction, match_image_size=match, spacing_width=spacing, spacing_color=color)
    case("ImageStitch", {"image1": "rgba", "image2": "rgb_b"}, [("IMAGE", stitch(rgba, rgb_b, "right", False, 2, "green"))],
         direction="right", match_image_size=False, spacing_width=2, spacing_color="green")
    case("ImageBatch", {"image1": "rgb", "image2": "rgb_b"}, [("IMAGE", batch(rgb, rgb_b))])
    case("ImageBatch", {"image1": "rgb_b", "image2": "rgba"}, [("IMAGE", batch(rgb_b, rgba))])
    case("RepeatImageBatch", {"image": "rgb"}, [("IMAGE", rgb.repeat((3, 1, 1, 1)))], amount=3)
    case("ImageFromBatch", {"image": "rgb"}, [("IMAGE", from_batch(rgb, -1, 4))], batch_index=-1, length=4)
    case("ImageFromBatch", {"image": "rgb"}, [("IMAGE", from_batch(rgb, 7, 1))], batch_index=7, length=1)
    for i, ch in enumerate(("red", "green", "blue")):
        case("ImageToMask", {"image": "rgb"}, [("MASK", rgb[:, :, :, i])], channel=ch)
    case("ImageToMask", {"image": "rgba"}, [("MASK", rgba[:, :, :, 3])], channel="alpha")
    probe = rgb[0, 4, 6]
    colour = int(round(probe[0].item() * 255)) << 16 | int(round(probe[1].item() * 255)) << 8 | int(round(probe[2].item() * 255))
    case("ImageColorToMask", {"image": "rgb"}, [("MASK", color_to_mask(rgb, colour))], color=colour)
    case("SolidMask", {}, [("MASK", torch.full((1, 7, 5), 0.25))], value=0.25, width=5, height=7)
    case("InvertMask", {"mask": "mask"}, [("MASK", 1.0 - mask)])
    case("CropMask", {"mask": "mask"}, [("MASK", mask[:, 2:2 + 30, 3:3 + 5])], x=3, y=2, width=5, height=30)
    for op in ("multiply", "add", "subtract", "and", "or", "xor"):
        case("MaskComposite", {"destination": "mask", "source": "mask_b"}, [("MASK", mask_composite(mask, mask_b, 11, 2, op))],
             x=11, y=2, operation=op)
    case("FeatherMask", {"mask": "mask"}, [("MASK", feather(mask, 3, 2, 4, 5))], left=3, top=2, right=4, bottom=5)
    case("FeatherMask", {"mask": "mask"}, [("MASK", feather(mask, 40, 0, 0, 1))], left=40, top=0, right=0, bottom=1)
    for expand, tapered in ((2, True), (-1, False), (3, False), (-2, True)):
        case("GrowMask", {"mask": "binary"}, [("MASK", grow(binary, expand, tapered))], expand=expand,
             tapered_corners=tapered)
    case("GrowMask", {"mask": "mask"}, [("MASK", grow(mask, 1, True))], expand=1, tapered_corners=True)
    case("ThresholdMask", {"mask": "mask"}, [("MASK", (mask > 0.3).float())], value=0.3)
    case("ImageCompositeMasked", {"destination": "rgb", "source": "rgb_b"},
         [("IMAGE", image_composite_masked(rgb, rgb_b, 10, 6, False))], x=10, y=6, resize_source=False)
    case("ImageCompositeMasked", {"destination": "rgb", "source": "rgb_b", "mask": "mask_b"},
         [("IMAGE", image_composite_masked(rgb, rgb_b, 2, 1, False, mask_b))], 2e-6, x=2, y=1, resize_source=False)
    case("ImageCompositeMasked", {"destination": "rgba", "source": "rgb_b", "mask": "mask_b"},
         [("IMAGE", image_composite_masked(rgba, rgb_b, 0, 0, True, mask_b))], 2e-6, x=0, y=0, resize_source=True)
    for mode in ("ADD", "CLEAR", "DARKEN", "DST", "DST_ATOP", "DST_IN", "DST_OUT", "DST_OVER", "LIGHTEN", "MULTIPLY",
                 "OVERLAY", "SCREEN", "SRC", "SRC_ATOP", "SRC_IN", "SRC_OUT", "SRC_OVER", "XOR"):
        im, a = porter_duff_node(rgb_b, mask_b, rgb, mask, mode)
        a = a.clamp(0, 1)  # Cozy's MASK range: bicubic resizing of the alphas overshoots
        case("PorterDuffImageComposite", {"source": "rgb_b", "source_alpha": "mask_b", "destination": "rgb",
                                          "destination_alpha": "mask"}, [("IMAGE", im), ("MASK", a)], 1e-5, mode=mode)
    split_alpha = 1.0 - rgba[..., 3]
    case("SplitImageWithAlpha", {"image": "rgba"}, [("IMAGE", rgba[..., :3]), ("MASK", split_alpha)])
    case("SplitImageWithAlpha", {"image": "rgb"}, [("IMAGE", rgb), ("MASK", torch.zeros(2, 13, 17))])
    case("JoinImageWithAlpha", {"image": "rgb", "alpha": "mask_b"}, [("IMAGE", join_alpha(rgb, mask_b))], 2e-6)
    for op in ("erode", "dilate", "open", "close", "gradient", "top_hat", "bottom_hat"):
        for k in (3, 4):
            case("Morphology", {"image": "smooth"}, [("IMAGE", morphology(smooth, op, k))], 1e-6, operation=op,
                 kernel_size=k)

    edges_in = image_t("edges_in", torch.nn.functional.interpolate(smooth.movedim(-1, 1), size=(24, 32), mode="nearest").movedim(1, -1))
    shapes = torch.zeros(1, 24, 32, 3)
    shapes[:, 5:19, 6:20, 0] = 1.0
    shapes[:, 8:14, 12:28, 1] = 0.8
    image_t("shapes", shapes)
    for source, low, high in (("edges_in", 0.2, 0.5), ("edges_in", 0.4, 0.8), ("shapes", 0.4, 0.8), ("shapes", 0.05, 0.99)):
        t = tensors[source].movedim(1, -1)
        out = canny(t.movedim(-1, 1), low, high)[1].repeat(1, 3, 1, 1).movedim(1, -1)
        case("Canny", {"image": source}, [("IMAGE", out)], 0.0, low_threshold=low, high_threshold=high)

    offset = 0
    index = {}
    with open(os.path.join(HERE, "reference.bin"), "wb") as f:
        for name, t in tensors.items():
            data = t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
            f.write(data)
            index[name] = {"shape": list(t.shape), "offset": offset}
            offset += len(data)
    made_with = {"torch": torch.__version__, "PIL": PIL.__version__, "scipy": scipy.__version__,
                 "kornia": kornia.__version__, "numpy": np.__version__}
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump({"made_with": made_with, "tensors": index, "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases, {len(tensors)} tensors, {offset} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
