#!/usr/bin/env python3
"""PyTorch's side of `examples/bench_train`: the same CIFAR-stride MobileNetV2 (torchvision's,
with the stem and the first stride-2 stage at stride 1, as liandan's CIFAR variant), the
same step (forward, cross-entropy with label smoothing 0.1, backward, SGD with momentum)
and batch sizes, on the CPU with the given threads or on CUDA. Prints one JSON line:
{"train_images_per_s": ..., "eval_images_per_s": ..., "device": ...}.

    python3 scripts/bench_train_torch.py --batch 64 --eval-batch 256 --steps 5 --threads 2
"""
import argparse
import json
import time

import torch
import torchvision


def cifar_mobilenet_v2():
    model = torchvision.models.mobilenet_v2(num_classes=10)
    model.features[0][0].stride = (1, 1)  # the stem
    model.features[2].conv[1][0].stride = (1, 1)  # the first t=6, c=24 block
    return model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--eval-batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--cuda", action="store_true")
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.cuda and torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    model = cifar_mobilenet_v2().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(a.batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (a.batch,), device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    model.train()
    step()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    sync()
    train = a.batch * a.steps / (time.perf_counter() - start)

    model.eval()
    xe = torch.randn(a.eval_batch, 3, 32, 32, device=device)
    with torch.no_grad():
        model(xe)
        sync()
        start = time.perf_counter()
        for _ in range(a.steps):
            model(xe)
        sync()
    evaluate = a.eval_batch * a.steps / (time.perf_counter() - start)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(json.dumps({"train_images_per_s": train, "eval_images_per_s": evaluate, "device": name}))


if __name__ == "__main__":
    main()
