#!/usr/bin/env python3
"""Writes kernels-tests/fixtures/specs/<model>.tsv: every state_dict entry of the
torchvision (or timm) model liandan builds under that name, in state_dict order, as
`name<TAB>shape<TAB>param|buffer`. The zoo's tests compare liandan's models against
these files, so weights move between the two with no renaming.

Needs torch, torchvision and timm (pip install torch torchvision timm); run once, from the
repository root: python3 scripts/torchvision_specs.py
"""
import os
import sys

import timm
import torch
import torchvision.models as tv

OUT = os.path.join(os.path.dirname(__file__), "..", "kernels-tests", "fixtures", "specs")

# liandan's name -> a constructor of the reference model (random weights, no download).
MODELS = {
    "alexnet": lambda: tv.alexnet(),
    **{f"vgg{d}": (lambda d=d: getattr(tv, f"vgg{d}")()) for d in (11, 13, 16, 19)},
    **{f"vgg{d}_bn": (lambda d=d: getattr(tv, f"vgg{d}_bn")()) for d in (11, 13, 16, 19)},
    "googlenet": lambda: tv.googlenet(aux_logits=True, init_weights=False),
    "googlenet_no_aux": lambda: tv.googlenet(aux_logits=False, init_weights=False),
    "inception_v3": lambda: tv.inception_v3(aux_logits=True, init_weights=False),
    "inception_v3_no_aux": lambda: tv.inception_v3(aux_logits=False, init_weights=False),
    **{f"resnet{d}": (lambda d=d: getattr(tv, f"resnet{d}")()) for d in (18, 34, 50, 101, 152)},
    "resnext50_32x4d": lambda: tv.resnext50_32x4d(),
    "resnext101_32x8d": lambda: tv.resnext101_32x8d(),
    "wide_resnet50_2": lambda: tv.wide_resnet50_2(),
    **{f"densenet{d}": (lambda d=d: getattr(tv, f"densenet{d}")()) for d in (121, 169, 201)},
    "mobilenet_v2": lambda: tv.mobilenet_v2(),
    "mobilenet_v3_large": lambda: tv.mobilenet_v3_large(),
    "mobilenet_v3_small": lambda: tv.mobilenet_v3_small(),
    **{f"shufflenet_v2_{w}": (lambda w=w: getattr(tv, f"shufflenet_v2_{w}")())
       for w in ("x0_5", "x1_0", "x1_5", "x2_0")},
    **{f"efficientnet_b{i}": (lambda i=i: getattr(tv, f"efficientnet_b{i}")()) for i in range(8)},
    # timm: the seed's GoogLeNet V4 line, Xception and SENet.
    "inception_v4": lambda: timm.create_model("inception_v4"),
    "inception_resnet_v2": lambda: timm.create_model("inception_resnet_v2"),
    "xception": lambda: timm.create_model("legacy_xception"),
    "se_resnet50": lambda: timm.create_model("seresnet50"),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    only = set(sys.argv[1:])
    for name, make in MODELS.items():
        if only and name not in only:
            continue
        model = make()
        params = {n for n, _ in model.named_parameters()}
        lines = []
        for key, t in model.state_dict().items():
            kind = "param" if key in params else "buffer"
            lines.append(f"{key}\t{list(t.shape)}\t{kind}")
        with open(os.path.join(OUT, f"{name}.tsv"), "w") as f:
            f.write("\n".join(lines) + "\n")
        total = sum(p.numel() for p in model.parameters())
        print(f"{name}\t{total}\t{len(lines)} entries")


if __name__ == "__main__":
    main()
