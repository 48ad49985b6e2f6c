"""A missing, damaged or mismatched artifact is refused with an error that names the problem."""

import json

import numpy as np
import pytest

import kd_edge


def edit_manifest(artifact, **changes):
    path = artifact / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="artifact directory not found: .*nowhere"):
        kd_edge.Solver(str(tmp_path / "nowhere"))


def test_directory_without_manifest(tmp_path):
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        kd_edge.Solver(str(tmp_path))


def test_manifest_that_is_not_json(artifact_copy):
    (artifact_copy / "manifest.json").write_text('{"format": 1, "library": ')
    with pytest.raises(kd_edge.ArtifactError, match="manifest.json: not valid JSON"):
        kd_edge.Solver(str(artifact_copy))


def test_manifest_from_another_format_version(artifact_copy):
    edit_manifest(artifact_copy, format=2)
    with pytest.raises(kd_edge.ArtifactError, match="manifest format 2, this runtime reads 1"):
        kd_edge.Solver(str(artifact_copy))


def test_manifest_with_a_field_of_the_wrong_type(artifact_copy):
    edit_manifest(artifact_copy, inputs="x0,x1")
    with pytest.raises(kd_edge.ArtifactError, match='field "inputs" must be a list of strings'):
        kd_edge.Solver(str(artifact_copy))


def test_library_whose_sha256_differs(artifact_copy):
    with open(artifact_copy / "model.so", "ab") as f:
        f.write(b"\0")
    with pytest.raises(kd_edge.ArtifactError, match="the library was changed or damaged"):
        kd_edge.Solver(str(artifact_copy))


def test_missing_library(artifact_copy):
    (artifact_copy / "model.so").unlink()
    with pytest.raises(FileNotFoundError, match="library named in manifest.json is missing"):
        kd_edge.Solver(str(artifact_copy))


def test_library_outside_the_artifact(artifact_copy):
    edit_manifest(artifact_copy, library="/usr/lib/x86_64-linux-gnu/libm.so.6")
    with pytest.raises(kd_edge.ArtifactError, match="plain file name inside the artifact"):
        kd_edge.Solver(str(artifact_copy))


def test_library_for_cpu_features_this_host_lacks(artifact_copy):
    manifest = json.loads((artifact_copy / "manifest.json").read_text())
    target = dict(manifest["target"], features=manifest["target"]["features"] + ["imaginary_isa"])
    edit_manifest(artifact_copy, target=target)
    with pytest.raises(kd_edge.ArtifactError, match="needs features this host lacks: imaginary_isa"):
        kd_edge.Solver(str(artifact_copy))


def test_a_good_copy_still_loads(artifact_copy):
    # guards the tests above: the damage, not the copy, is what they catch
    assert kd_edge.Solver(str(artifact_copy)).predict(np.zeros((1, 2))).shape == (1, 1)
