#!/usr/bin/env python3
"""Checks `examples/infer` against PyTorch: for each model, random weights (batch norm's
running statistics and affine terms randomized too, so they matter) are saved as a
safetensors state_dict, the same input runs through torchvision's (or timm's) model in
eval mode and through liandan's `infer`, and the relative difference of the logits,
||a - b|| / ||a||, is printed. Exits non-zero when one passes 1e-4.

Needs torch, torchvision, timm and safetensors, and the release build of the example:
    cargo build --release --example infer
    python3 scripts/compare_with_pytorch.py [model ...]
"""
import os
import subprocess
import sys
import tempfile

import timm
import torch
import torchvision.models as tv
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
INFER = os.path.join(ROOT, "target", "release", "examples", "infer")
TOLERANCE = 1e-4

# liandan's name -> (constructor of the reference in its pretrained form, input side).
MODELS = {
    "alexnet": (lambda: tv.alexnet(), 224),
    "vgg11_bn": (lambda: tv.vgg11_bn(), 224),
    "googlenet": (lambda: tv.googlenet(aux_logits=False, transform_input=True, init_weights=True), 224),
    "inception_v3": (lambda: tv.inception_v3(aux_logits=True, transform_input=True, init_weights=True), 299),
    "resnet18": (lambda: tv.resnet18(), 224),
    "resnet50": (lambda: tv.resnet50(), 224),
    "resnext50_32x4d": (lambda: tv.resnext50_32x4d(), 224),
    "wide_resnet50_2": (lambda: tv.wide_resnet50_2(), 224),
    "se_resnet50": (lambda: timm.create_model("seresnet50"), 224),
    "densenet121": (lambda: tv.densenet121(), 224),
    "mobilenet_v2": (lambda: tv.mobilenet_v2(), 224),
    "mobilenet_v3_small": (lambda: tv.mobilenet_v3_small(), 224),
    "mobilenet_v3_large": (lambda: tv.mobilenet_v3_large(), 224),
    "shufflenet_v2_x1_0": (lambda: tv.shufflenet_v2_x1_0(), 224),
    "efficientnet_b0": (lambda: tv.efficientnet_b0(), 224),
    "inception_v4": (lambda: timm.create_model("inception_v4"), 299),
    "inception_resnet_v2": (lambda: timm.create_model("inception_resnet_v2"), 299),
    "xception": (lambda: timm.create_model("legacy_xception"), 299),
}


def randomize_batch_norm(model, generator):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                c = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(c, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(c, generator=generator))
                m.weight.copy_(0.8 + 0.4 * torch.rand(c, generator=generator))
                m.bias.copy_(0.1 * torch.randn(c, generator=generator))
                m.num_batches_tracked.fill_(7)


def compare(name, make, side, workdir):
    torch.manual_seed(0)
    model = make().eval()
    randomize_batch_norm(model, torch.Generator().manual_seed(1))
    weights = os.path.join(workdir, f"{name}.safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(2))
    inp = os.path.join(workdir, "input.safetensors")
    out = os.path.join(workdir, "logits.safetensors")
    save_file({"input": x}, inp)
    with torch.no_grad():
        want = model(x).double()
    subprocess.run(
        [INFER, "--model", name, "--weights", weights, "--input", inp, "--output", out],
        check=True,
    )
    got = load_file(out)["logits"].double()
    return ((got - want).norm() / want.norm()).item()


def main():
    names = sys.argv[1:] or list(MODELS)
    worst = 0.0
    with tempfile.TemporaryDirectory() as workdir:
        for name in names:
            make, side = MODELS[name]
            err = compare(name, make, side, workdir)
            worst = max(worst, err)
            print(f"{name:22s} {side}x{side}  ||a-b||/||a|| = {err:.2e}", flush=True)
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
