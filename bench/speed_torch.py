"""The PyTorch peer of bench/speed.ts: train and inference images/s of the same models.

    /usr/bin/python3 bench/speed_torch.py --threads 2 --batch 64 --size 32 \
        --plan mini_resnet:2:10,resnet18:2:5 --repeats 2

Run with Debian's interpreter (python3-torch, python3-torchvision), not another python on PATH.
Prints one JSON object on stdout: {"torch": version, "threads": n, "results": [...]}, one result
per model with the images/s of each repeat for `train` (Adam step: zero_grad, forward,
cross-entropy, backward, step; train mode) and `infer` (eval mode, torch.inference_mode()).
`--plan` lists model:warmup:steps; warm-up steps are not timed; each repeat times `steps` steps.

Models (NCHW, PyTorch's default layout), 10 classes, random init as torchvision does it
(torchvision/models/resnet.py: kaiming_normal_ fan_out for convs, BatchNorm weight 1 / bias 0,
nn.Linear's default U(-1/sqrt(in), 1/sqrt(in))):
- resnet18, resnet50: torchvision.models.resnet18/50(num_classes=10).
- cifar_resnet18: resnet18 with a 3x3 stride-1 stem and no max-pool (the usual CIFAR variant,
  e.g. kuangliu/pytorch-cifar).
- mini_resnet: pipe's mini_resnet (src/models/resnet.ts): 3x3/2 stem of 16 channels, BasicBlock
  stages 16-32-64 (strides 1, 2, 2), global average pool.
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


def init_like_torchvision(m: nn.Module) -> nn.Module:
    """torchvision ResNet's init (resnet.py, ResNet.__init__)."""
    for mod in m.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)
    return m


def mini_resnet(num_classes: int) -> nn.Module:
    """pipe's mini_resnet in PyTorch: the same layers, names aside."""
    from torchvision.models.resnet import BasicBlock

    def block(cin: int, cout: int, stride: int) -> nn.Module:
        down = None
        if stride != 1 or cin != cout:
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        return BasicBlock(cin, cout, stride, down)

    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        block(16, 16, 1), block(16, 32, 2), block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes),
    )
    return init_like_torchvision(net)


def cifar_resnet18(num_classes: int) -> nn.Module:
    m = torchvision.models.resnet18(num_classes=num_classes)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return init_like_torchvision(m)


BUILDERS = {
    "mini_resnet": mini_resnet,
    "resnet18": lambda k: torchvision.models.resnet18(num_classes=k),
    "resnet50": lambda k: torchvision.models.resnet50(num_classes=k),
    "cifar_resnet18": cifar_resnet18,
}


def timed(fn, warmup: int, steps: int, repeats: int, batch: int) -> list:
    """images/s of each repeat of `steps` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        out.append(batch * steps / (time.perf_counter() - t0))
    return out


def bench(name: str, warmup: int, steps: int, repeats: int, batch: int, size: int) -> dict:
    torch.manual_seed(0)
    model = BUILDERS[name](10)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    model.train()
    train = timed(train_step, warmup, steps, repeats, batch)
    model.eval()

    def infer_step() -> None:
        with torch.inference_mode():
            model(x)

    infer = timed(infer_step, warmup, steps * 2, repeats, batch)
    return {"model": name, "train": train, "infer": infer}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--plan", required=True, help="model:warmup:steps,...")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    results = []
    for item in a.plan.split(","):
        name, warmup, steps = item.split(":")
        results.append(bench(name, int(warmup), int(steps), a.repeats, a.batch, a.size))
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "results": results}))


if __name__ == "__main__":
    main()
