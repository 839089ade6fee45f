"""Targeted check (docs/pretraining.md): can a ResNet-18 learn lesion vs healthy on the
patch store at all, trained supervised (BCE) the way pretraining sees the patches?

    python scripts/supervised_patch_check.py SIZE STEPS LR CROP_MIN
    python scripts/supervised_patch_check.py 64 200 1e-3 0.8

Prints the held-out balanced accuracy (the probe images' patches) every 50 steps.
"""
import sys, time
import numpy as np, torch, torch.nn.functional as F
from comcl.detection import patch_store
from comcl.pretraining import probe
from comcl.pretraining.encoder import build_backbone
from comcl.imaging import augment
torch.manual_seed(0); torch.set_num_threads(2)
size = int(sys.argv[1]); steps = int(sys.argv[2]); lr = float(sys.argv[3]); cs = float(sys.argv[4])
arr, index = patch_store.load("data/patches/store")
held = probe.probe_split(index, 0.2, 0)
y = index["lesion"].to_numpy().astype(np.float32)
tr, te = np.flatnonzero(~held), np.flatnonzero(held)
net = build_backbone("resnet18"); head = torch.nn.Linear(512, 1)
opt = torch.optim.Adam(list(net.parameters()) + list(head.parameters()), lr=lr)
cfg = augment.AugmentConfig(size, scale=(cs, 1.0), right_angles=True, jitter_p=0.0, grey_p=0.0)
rng = np.random.default_rng(0); g = torch.Generator().manual_seed(0)
pos, neg = tr[y[tr] == 1], tr[y[tr] == 0]
t0 = time.time()
for s in range(steps):
    b = np.concatenate([rng.choice(pos, 24), rng.choice(neg, 24)])
    x = torch.from_numpy(arr[b]).permute(0, 3, 1, 2)
    x = augment.augment(x, augment.sample_params(len(b), cfg, g), cfg)
    loss = F.binary_cross_entropy_with_logits(head(net(x))[:, 0], torch.from_numpy(y[b]))
    opt.zero_grad(); loss.backward(); opt.step()
    if s % 50 == 49 or s == steps - 1:
        net.eval()
        with torch.no_grad():
            xt = augment.plain(torch.from_numpy(arr[te]).permute(0, 3, 1, 2), size)
            p = torch.cat([head(net(xt[i:i+256]))[:, 0] for i in range(0, len(te), 256)]).numpy()
        net.train()
        pred = p > 0
        yt = y[te] == 1
        bal = 0.5 * (pred[yt].mean() + (~pred[~yt]).mean())
        print(f"step {s+1} loss {loss.item():.3f} held-out balanced acc {bal:.3f} ({time.time()-t0:.0f}s)", flush=True)
