#!/usr/bin/python3
"""The Python PyTorch peer of Cozy's DCGAN (the same layers as plugins/gan/dcgan.cpp
for 28x28, unconditional, as in pytorch/examples' DCGAN).

  speed --threads N            training and sampling images/s at batch 64 (JSON)
  train --steps S --out DIR [--device cuda]
                               trains on Fashion-MNIST like graphs/train_gan.json
                               (Adam 2e-4, betas (0.5, 0.999), label smoothing
                               0.1, seed 0) and writes 10,000 samples as IDX files
                               (samples-images-idx3-ubyte.gz, samples-labels-idx1-ubyte.gz)

Run with Debian's interpreter: /usr/bin/python3 (python3-torch).
"""
import argparse, gzip, json, os, struct, sys, time

import numpy as np
import torch
import torch.nn as nn


def generator(nz=100, w=64, c=1):
    return nn.Sequential(
        nn.ConvTranspose2d(nz, 4 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(True),
        nn.ConvTranspose2d(4 * w, 2 * w, 3, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(True),
        nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(True),
        nn.ConvTranspose2d(w, c, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(w=64, c=1):
    return nn.Sequential(
        nn.Conv2d(c, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
        nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2, True),
        nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2, True),
        nn.Conv2d(4 * w, 1, 3, 1, 0, bias=False))


def init_weights(m):
    name = type(m).__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def train_step(g, d, opt_g, opt_d, real, nz, real_target=0.9):
    loss = nn.functional.binary_cross_entropy_with_logits
    b = real.size(0)
    z = torch.randn(b, nz, 1, 1, device=real.device)
    opt_d.zero_grad()
    d_real = d(real).view(-1)
    fake = g(z)
    d_fake = d(fake.detach()).view(-1)
    loss_d = loss(d_real, torch.full_like(d_real, real_target)) + loss(d_fake, torch.zeros_like(d_fake))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    d_on_fake = d(fake).view(-1)
    loss_g = loss(d_on_fake, torch.ones_like(d_on_fake))
    loss_g.backward()
    opt_g.step()
    return loss_d.item(), loss_g.item()


def models(nz, device="cpu"):
    g, d = generator(nz).to(device), discriminator().to(device)
    g.apply(init_weights)
    d.apply(init_weights)
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    return g, d, opt_g, opt_d


def speed(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    nz, batch, dev = 100, 64, torch.device(args.device)
    g, d, opt_g, opt_d = models(nz, dev)
    real = torch.rand(batch, 1, 28, 28, device=dev) * 2 - 1
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        train_step(g, d, opt_g, opt_d, real, nz)
    times = []
    for _ in range(args.repeats):
        sync()
        t = time.perf_counter()
        for _ in range(args.steps):
            train_step(g, d, opt_g, opt_d, real, nz)
        sync()
        times.append((time.perf_counter() - t) / args.steps)
    g.eval()
    sample_times = []
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(batch, nz, 1, 1, device=dev))
        for _ in range(args.repeats):
            sync()
            t = time.perf_counter()
            for _ in range(args.steps):
                images = (g(torch.randn(batch, nz, 1, 1, device=dev)) + 1) * 0.5
            sync()
            sample_times.append((time.perf_counter() - t) / args.steps)
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "device": args.device,
                      "train_img_s": batch / float(np.median(times)),
                      "sample_img_s": batch / float(np.median(sample_times))}))


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def write_idx(path, array):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def train(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))
    dev = torch.device(args.device)
    real_all = (torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1) * 2 - 1).to(dev)
    nz, batch = 100, 64
    g, d, opt_g, opt_d = models(nz, dev)
    order, cursor = torch.randperm(len(real_all)), 0
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        if cursor + batch > len(real_all):
            order, cursor = torch.randperm(len(real_all)), 0
        real = real_all[order[cursor:cursor + batch].to(dev)]
        cursor += batch
        ld, lg = train_step(g, d, opt_g, opt_d, real, nz)
        if step % 100 == 0:
            print(f"step {step} D {ld:.3f} G {lg:.3f} {step * batch / (time.perf_counter() - start):.0f} img/s",
                  file=sys.stderr, flush=True)
    g.eval()
    with torch.no_grad():
        samples = torch.cat([g(torch.randn(1000, nz, 1, 1, device=dev)) for _ in range(10)])
    pixels = ((samples.squeeze(1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    os.makedirs(args.out, exist_ok=True)
    write_idx(os.path.join(args.out, "samples-images-idx3-ubyte.gz"), pixels)
    write_idx(os.path.join(args.out, "samples-labels-idx1-ubyte.gz"), np.zeros(len(pixels), dtype=np.uint8))
    print(json.dumps({"torch": torch.__version__, "device": args.device, "steps": args.steps,
                      "seconds": time.perf_counter() - start}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--steps", type=int, default=10)
    s.add_argument("--repeats", type=int, default=5)
    s.add_argument("--warmup", type=int, default=3)
    s.add_argument("--device", default="cpu")
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=1200)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    t.add_argument("--out", required=True)
    t.add_argument("--device", default="cpu")
    args = p.parse_args()
    speed(args) if args.mode == "speed" else train(args)


if __name__ == "__main__":
    main()
