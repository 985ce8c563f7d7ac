"""The committed stubs are exactly what gen_protos.sh makes from crates/protocol/proto."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "src" / "seldon_mesh_wrapper" / "proto"


def _files(base: Path) -> set[str]:
    return {str(p.relative_to(base)) for p in base.rglob("*.py")}


def test_generated_stubs_match_the_proto_files(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run(["bash", str(ROOT / "scripts" / "gen_protos.sh"), str(tmp_path)], check=True, env=env)
    fresh, committed = _files(tmp_path), _files(COMMITTED)
    assert fresh == committed, "stub files differ: run scripts/gen_protos.sh"
    drifted = [f for f in sorted(fresh) if not filecmp.cmp(tmp_path / f, COMMITTED / f, shallow=False)]
    assert drifted == [], f"stale stubs {drifted}: run model-servers/python/scripts/gen_protos.sh"


def test_gen_protos_fails_when_the_proto_folder_is_missing(tmp_path):
    script = tmp_path / "scripts" / "gen_protos.sh"
    script.parent.mkdir()
    script.write_text((ROOT / "scripts" / "gen_protos.sh").read_text())
    r = subprocess.run(["bash", str(script), str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode != 0
