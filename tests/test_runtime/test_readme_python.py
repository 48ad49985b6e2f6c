"""The README's Python examples of compiling and running run as printed."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_readme_python_runtime_examples_run(tmp_path, monkeypatch):
    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
              if "kd_edge.Solver(" in b]
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)  # the examples write out/...
    namespace = {}
    for block in blocks:
        exec(compile(block.replace('"models/', f'"{ROOT}/models/'), "README.md", "exec"), namespace)
    assert namespace["u"].shape == (25_600, 1)
    assert namespace["solver"].domain_policy == "reject" and namespace["solver"].max_batch == 64
    assert np.isfinite(namespace["y"]).all() and namespace["solver"].out_of_domain == 0
    assert namespace["solver"].input_names == ["x", "t"]
    # Derivatives and the residual
    assert namespace["checked"].output_names == ["u", "u_x", "u_t", "u_xx", "residual"]
    assert namespace["columns"].shape == (2, 5) and namespace["checked"].residual_exceeded == 0
