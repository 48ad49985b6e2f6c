"""The artifact's manifest.json: what the C++ runtime validates before loading anything."""

import hashlib
import json
import os
from pathlib import Path

MANIFEST_FORMAT = 3  # csrc/include/kd_edge/solver.hpp: kManifestFormat must match
MANIFEST_NAME = "manifest.json"
LIBRARY_NAME = "model.so"
DOMAIN_POLICIES = ("flag", "clamp", "reject")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha256(module) -> str:
    """Hash of a torch module's parameters and buffers (names, dtypes, shapes and values)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def write_manifest(out_dir: Path, manifest: dict) -> Path:
    """Write manifest.json atomically, so an interrupted compile never leaves a valid-looking artifact."""
    path = out_dir / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, path)
    return path
