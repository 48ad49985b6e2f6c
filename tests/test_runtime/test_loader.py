"""The loader holds up against hostile and careless artifacts (issue: runtime hardening, findings
1, 3, 4, 5): a bounded manifest parser, the library that was hashed is the library that runs, and
a library that disagrees with its manifest is refused at load instead of failing in predict.
Each case runs for a fused and a VM artifact."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

import kd_edge
from kd_edge.networks import MLP


class Softplus(torch.nn.Module):  # not a dense chain: compiles to the Relax VM
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return self.scale * torch.nn.functional.softplus(x).sum(dim=1, keepdim=True)


def build(kind, path, seed=0):
    """A small artifact of that kind whose output depends on `seed`."""
    if kind == "fused":
        torch.manual_seed(seed)
        return kd_edge.compile(MLP(2, 1, 8, 1).eval(), torch.zeros(3, 2), path, progress=False)
    return kd_edge.compile(Softplus(1.0 + seed), torch.zeros(3, 2), path, backend="vm", progress=False)


KINDS = ["fused", "vm"]
X = np.array([[0.3, -0.2]], np.float32)


def rewrite(artifact, text):
    (artifact / "manifest.json").write_text(text)


@pytest.mark.parametrize("kind", KINDS)
def test_deep_nesting_is_an_error_not_a_crash(kind, tmp_path):
    artifact = build(kind, tmp_path / "a")
    manifest = (artifact / "manifest.json").read_text()
    rewrite(artifact, manifest[:-2] + ', "junk": ' + "[" * 12000 + "]" * 12000 + "}\n")
    with pytest.raises(kd_edge.ArtifactError, match="not valid JSON: nesting deeper than 32 levels"):
        kd_edge.Solver(artifact)


@pytest.mark.parametrize("kind", KINDS)
def test_an_oversized_manifest_is_refused_unread(kind, tmp_path):
    artifact = build(kind, tmp_path / "a")
    with open(artifact / "manifest.json", "ab") as f:
        f.truncate(200 << 20)  # 200 MB, sparse: the size alone must refuse it
    with pytest.raises(kd_edge.ArtifactError, match="is 209715200 bytes, larger than a manifest can be"):
        kd_edge.Solver(artifact)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.update(format=True), 'field "format" must be an integer'),
    (lambda m: m.update(format=3.5), 'field "format" must be an integer'),
    (lambda m: m["runtime"].update(parallel_min_points="4096"), 'field "parallel_min_points" must be an integer'),
])
def test_numbers_must_be_numbers(edit, message, tmp_path):
    artifact = build("fused", tmp_path / "a")
    manifest = json.loads((artifact / "manifest.json").read_text())
    edit(manifest)
    rewrite(artifact, json.dumps(manifest))
    with pytest.raises(kd_edge.ArtifactError, match=message):
        kd_edge.Solver(artifact)


def test_invalid_utf8_in_the_manifest_is_named(tmp_path):
    artifact = build("fused", tmp_path / "a")
    text = (artifact / "manifest.json").read_bytes().replace(b'"x0"', b'"x\xff"', 1)
    (artifact / "manifest.json").write_bytes(text)
    with pytest.raises(kd_edge.ArtifactError, match="invalid UTF-8 in string"):
        kd_edge.Solver(artifact)


@pytest.mark.parametrize("kind", KINDS)
def test_recompiling_in_place_runs_the_new_library(kind, tmp_path):
    first = build(kind, tmp_path / "a", seed=0)
    old = kd_edge.Solver(first, threads=1)
    y_old = old.predict(X)
    build(kind, tmp_path / "a", seed=1)  # same path, new weights, while the first is still loaded
    y_new = kd_edge.Solver(tmp_path / "a", threads=1).predict(X)
    expected = build(kind, tmp_path / "reference", seed=1)
    assert not np.allclose(y_new, y_old)
    np.testing.assert_array_equal(y_new, kd_edge.Solver(expected, threads=1).predict(X))
    np.testing.assert_array_equal(old.predict(X), y_old)  # the loaded one keeps its own


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_relative_path_from_two_directories(kind, tmp_path, monkeypatch):
    for seed in (0, 1):
        build(kind, tmp_path / f"dir{seed}" / "artifact", seed=seed)
    results = []
    for seed in (0, 1):
        monkeypatch.chdir(tmp_path / f"dir{seed}")
        results.append(kd_edge.Solver("artifact", threads=1).predict(X))
    assert not np.allclose(results[0], results[1])


@pytest.mark.parametrize("kind", KINDS)
def test_a_library_swapped_after_loading_does_not_change_the_artifact(kind, tmp_path):
    artifact = build(kind, tmp_path / "a", seed=0)
    loaded = kd_edge.Artifact(artifact)
    y = kd_edge.Solver(loaded, threads=1).predict(X)
    other = build(kind, tmp_path / "b", seed=1)
    os.replace(other / "model.so", artifact / "model.so")  # the bytes that were hashed are the ones that run
    np.testing.assert_array_equal(kd_edge.Solver(loaded, threads=1).predict(X), y)
    with pytest.raises(kd_edge.ArtifactError, match="the library was changed or damaged"):
        kd_edge.Solver(artifact)


@pytest.mark.parametrize("kind", KINDS)
def test_widths_that_disagree_with_the_library_are_refused_at_load(kind, tmp_path):
    artifact = build(kind, tmp_path / "a")
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest.update(inputs=["a", "b", "c"], input_width=3)
    if manifest["domain"]:
        manifest["domain"] = {"lower": [0, 0, 0], "upper": [1, 1, 1]}
    rewrite(artifact, json.dumps(manifest))
    with pytest.raises(kd_edge.ArtifactError, match="does not take the 3 inputs and 1 outputs manifest.json names"):
        kd_edge.Solver(artifact)


def test_a_kernel_error_is_an_exception_not_an_exit(tmp_path):
    """The fused library's error hook reaches the runtime: a failing call raises, and the process,
    and the artifact, go on."""
    artifact = build("fused", tmp_path / "a")
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest.update(outputs=["u", "v"], output_width=2)
    rewrite(artifact, json.dumps(manifest))
    with pytest.raises(kd_edge.ArtifactError, match=r"compiled model failed: ValueError: .*"):
        kd_edge.Solver(artifact)
    shutil.rmtree(artifact)
    build("fused", artifact)
    assert kd_edge.Solver(artifact).predict(X).shape == (1, 1)
