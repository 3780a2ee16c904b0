"""House rules a test can see: the engine knows no UI, nothing pickles, checkpoints load safely."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY_FILES = [p for d in ("engine", "ui", "pages") for p in (ROOT / d).rglob("*.py")] + [ROOT / "app.py"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_engine_never_imports_ui_libraries():
    offenders = {str(p.relative_to(ROOT)): _imports(p) & {"streamlit", "plotly"} for p in (ROOT / "engine").rglob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_pickle_style_serialisation():
    banned = {"pickle", "joblib", "cloudpickle", "dill", "shelve"}
    offenders = {str(p.relative_to(ROOT)): _imports(p) & banned for p in PY_FILES}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_torch_load_is_weights_only():
    for path in PY_FILES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" and getattr(node.func.value, "id", None) == "torch":
                kwargs = {k.arg: k.value for k in node.keywords}
                assert "weights_only" in kwargs and getattr(kwargs["weights_only"], "value", None) is True, f"{path}:{node.lineno}"


def test_server_listens_on_localhost_and_caps_uploads():
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"
    assert 1024 <= config["server"]["maxUploadSize"] <= 4096  # MB: at least 1 GB, but capped
