import ast
import inspect
import itertools

from algora import settings as settings_module
from algora.settings import Settings


def documented_fields() -> set[str]:
    tree = ast.parse(inspect.getsource(settings_module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    documented = set()
    body = cls.body
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            documented.add(node.target.id)
    return documented


def test_every_setting_is_documented() -> None:
    fields = set(Settings.model_fields)
    assert fields - documented_fields() == set()


def test_environment_variables_use_the_prefix(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ALGORA_PORT", "9123")
    monkeypatch.setenv("ALGORA_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.port == 9123
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/registry.db"


def test_embedded_defaults_need_no_configuration(monkeypatch) -> None:
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"ALGORA_{name.upper()}", raising=False)
    settings = Settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert str(settings.data_dir) == ".algora"
