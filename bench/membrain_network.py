"""MemBrain-seg's network, timed on 160³ windows: run by bench/bench_membrain.py inside bench/.venv-membrain
(made by bench/make_membrain_venv.sh), never inside the plugin's environment.

The network is MONAI's DynUNet with the settings membrain-seg publishes for its segmentation U-Net: 3D, one input
and one output channel, six levels of 3x3x3 kernels, strides 1,2,2,2,2,2 (transposed-conv upsampling by the same
factors), filters 32-64-128-256-512-1024, residual blocks, deep supervision with two extra heads (inactive at
inference). Weights are random: the time does not depend on them. Prints one JSON line.
"""
import json
import sys
import time

import torch
from monai.networks.nets import DynUNet


def build():
    return DynUNet(spatial_dims=3, in_channels=1, out_channels=1, kernel_size=[3] * 6,
                   strides=[1, 2, 2, 2, 2, 2], upsample_kernel_size=[2] * 5,
                   filters=[32, 64, 128, 256, 512, 1024], res_block=True, deep_supervision=True,
                   deep_supr_num=2)


def main(windows=2, threads=2, size=160):
    torch.set_num_threads(threads)
    net = build().eval()
    x = torch.randn(1, 1, size, size, size)
    from torch.utils.flop_counter import FlopCounterMode
    with torch.inference_mode():
        counter = FlopCounterMode(display=False)
        with counter:                      # the first window warms up and counts FLOPs
            net(x)
        seconds = []
        for _ in range(windows):
            t = time.perf_counter()
            net(x)
            seconds.append(time.perf_counter() - t)
    print(json.dumps(dict(parameters=sum(p.numel() for p in net.parameters()), gflop=counter.get_total_flops() / 1e9,
                          seconds=seconds, torch=torch.__version__, threads=threads)))


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:]])
