"""A missing, damaged or mismatched artifact is refused with an error that names the problem."""

import json

import numpy as np
import pytest

import kd_edge
from kd_edge.compiler.manifest import MANIFEST_FORMAT


def edit_manifest(artifact, edit):
    path = artifact / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))


def append_byte(path):
    with open(path, "ab") as f:
        f.write(b"\0")


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="artifact directory not found: .*nowhere"):
        kd_edge.Solver(str(tmp_path / "nowhere"))


# Each case damages a private copy of a good artifact in one way.
DAMAGE = {
    "no-manifest": (lambda a: (a / "manifest.json").unlink(),
                    FileNotFoundError, "no manifest.json"),
    "not-json": (lambda a: (a / "manifest.json").write_text('{"format": 1, "library": '),
                 kd_edge.ArtifactError, "manifest.json: not valid JSON"),
    "format-version": (lambda a: edit_manifest(a, lambda m: m.update(format=MANIFEST_FORMAT + 1)),
                       kd_edge.ArtifactError,
                       f"manifest format {MANIFEST_FORMAT + 1}, this runtime reads {MANIFEST_FORMAT} \\(update kd-edge\\)"),
    "field-type": (lambda a: edit_manifest(a, lambda m: m.update(inputs="x0,x1")),
                   kd_edge.ArtifactError, 'field "inputs" must be a list of strings'),
    "sha256": (lambda a: append_byte(a / "model.so"),
               kd_edge.ArtifactError, "the library was changed or damaged"),
    "no-library": (lambda a: (a / "model.so").unlink(),
                   FileNotFoundError, "library named in manifest.json is missing"),
    "library-outside": (lambda a: edit_manifest(a, lambda m: m.update(library="/usr/lib/libm.so.6")),
                        kd_edge.ArtifactError, "plain file name inside the artifact"),
    "cpu-features": (lambda a: edit_manifest(a, lambda m: m["target"]["features"].append("imaginary_isa")),
                     kd_edge.ArtifactError, "needs features this host lacks: imaginary_isa"),
    "small-max-points": (lambda a: edit_manifest(a, lambda m: m["runtime"].update(small_max_points=10 ** 6)),
                         kd_edge.ArtifactError, 'field "small_max_points" must be an integer from 0 to tile_points - 1'),
    "tile-points": (lambda a: edit_manifest(a, lambda m: m["runtime"].update(tile_points=0)),
                    kd_edge.ArtifactError, 'field "tile_points" must be an integer from 1 to 1024'),
    "small-entry": (lambda a: edit_manifest(a, lambda m: m["runtime"].update(small_entry="nothing_here")),
                    kd_edge.ArtifactError, 'has no function "nothing_here"'),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_artifact_is_refused(artifact_copy, case):
    damage, error, message = DAMAGE[case]
    damage(artifact_copy)
    with pytest.raises(error, match=message):
        kd_edge.Solver(str(artifact_copy))


def test_a_good_copy_still_loads(artifact_copy):
    # guards the cases above: the damage, not the copy, is what they catch
    assert kd_edge.Solver(str(artifact_copy)).predict(np.zeros((1, 2))).shape == (1, 1)
