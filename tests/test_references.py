"""resolve() and build(): config references to modules and files, and the kwargs they are built with."""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path

import pytest
import torch.nn as nn
import torch.nn.functional as F

from flops_fit.errors import ConfigError
from flops_fit.references import build, call_problems, resolve


def write(path: Path, source: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_module_reference_and_dotted_attribute():
    assert resolve("torch.nn:CrossEntropyLoss", key="loss.target") is nn.CrossEntropyLoss
    assert resolve("torch.nn:functional.cross_entropy", key="loss.target") is F.cross_entropy


def test_file_reference_relative_to_base_dir_with_sibling_imports(tmp_path):
    write(tmp_path / "models" / "layers.py", "WIDTH = 7\n")
    write(tmp_path / "models" / "net.py", "from layers import WIDTH\nclass Net:\n    width = WIDTH\n")
    net = resolve("models/net.py:Net", key="model.class", base_dir=tmp_path)
    assert net.width == 7


def test_file_reference_defaults_to_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path / "cwd_user_code.py", "VALUE = 'from cwd'\n")
    monkeypatch.chdir(tmp_path)
    assert resolve("cwd_user_code.py:VALUE", key="dataset.target") == "from cwd"


def test_same_file_is_imported_once_and_same_stem_files_do_not_clash(tmp_path):
    write(tmp_path / "a" / "model.py", "class M: pass\n")
    write(tmp_path / "b" / "model.py", "class M: pass\n")
    first = resolve("a/model.py:M", key="model.class", base_dir=tmp_path)
    assert resolve(str(tmp_path / "a" / "model.py") + ":M", key="model.class") is first
    assert resolve("b/model.py:M", key="model.class", base_dir=tmp_path) is not first


@pytest.mark.parametrize("ref", ["torch.nn.CrossEntropyLoss", "torch.nn:", ":CrossEntropyLoss", "a:b-c", 42])
def test_malformed_reference_shows_the_expected_format(ref):
    with pytest.raises(ConfigError) as info:
        resolve(ref, key="loss.target")
    assert str(info.value).startswith(f"loss.target: {ref!r} is not a reference.")
    assert "'package.module:attribute'" in str(info.value) and "'path/to/file.py:attribute'" in str(info.value)


def test_unknown_module_names_key_module_and_fix(tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve("no_such_pkg.models:GPT", key="model.class", base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("model.class: cannot import module 'no_such_pkg.models' (no module named 'no_such_pkg').")
    assert "installed" in message and "'path/to/file.py:GPT'" in message


def test_module_that_is_a_local_file_suggests_the_file_form(tmp_path):
    write(tmp_path / "mymodels.py", "class GPT: pass\n")
    with pytest.raises(ConfigError, match=r"There is a file .*mymodels\.py: to use it, write 'mymodels\.py:GPT'"):
        resolve("mymodels:GPT", key="model.class", base_dir=tmp_path)


def test_module_with_a_missing_dependency_names_the_dependency(tmp_path):
    write(tmp_path / "needs_dep.py", "import not_installed_dependency_xyz\n")
    with pytest.raises(ConfigError) as info:
        resolve("needs_dep.py:X", key="dataset.target", base_dir=tmp_path)
    assert "dataset.target: importing file 'needs_dep.py'" in str(info.value)
    assert "not_installed_dependency_xyz" in str(info.value)


def test_missing_attribute_lists_close_matches():
    with pytest.raises(ConfigError) as info:
        resolve("torch.nn:CrossEntropyLos", key="loss.target")
    message = str(info.value)
    assert message.startswith("loss.target: module 'torch.nn' has no attribute 'CrossEntropyLos'")
    assert "Did you mean 'CrossEntropyLoss'" in message


def test_missing_attribute_in_a_file_is_case_insensitive_matched(tmp_path):
    write(tmp_path / "net.py", "class TinyGPT: pass\n")
    with pytest.raises(ConfigError, match=r"model.class: file net.py has no attribute 'tinygpt'.*Did you mean 'TinyGPT'\?"):
        resolve("net.py:tinygpt", key="model.class", base_dir=tmp_path)


def test_missing_file_names_the_path_and_the_working_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        resolve("models/gpt.py:GPT", key="model.class", base_dir=tmp_path)
    message = str(info.value)
    assert message.startswith("model.class: file 'models/gpt.py' not found")
    assert str(tmp_path / "models" / "gpt.py") in message
    assert f"relative to the working directory {tmp_path}" in message


def test_file_that_raises_on_import_is_reported(tmp_path):
    write(tmp_path / "broken.py", "raise RuntimeError('boom at import')\n")
    with pytest.raises(ConfigError, match=r"importing file 'broken.py' .* raised RuntimeError: boom at import"):
        resolve("broken.py:X", key="model.class", base_dir=tmp_path)
    # a failed import is not cached: fixing the file fixes the next resolve
    write(tmp_path / "broken.py", "X = 1\n")
    assert resolve("broken.py:X", key="model.class", base_dir=tmp_path) == 1


class Loader:
    def __init__(self, n: int, scale: float = 1.0) -> None:
        self.n, self.scale = n, scale


def make_loader(n: int = 3) -> Loader:
    return Loader(n)


def smooth_loss(predictions, targets, smoothing=0.0):
    return F.cross_entropy(predictions, targets, label_smoothing=smoothing)


def test_build_instantiates_a_class_with_kwargs():
    built = build(Loader, {"n": 5, "scale": 2.0}, key="dataset.target")
    assert (built.n, built.scale) == (5, 2.0)


def test_build_calls_a_function_for_datasets():
    assert build(make_loader, {"n": 9}, key="dataset.target").n == 9


def test_build_binds_a_function_for_losses():
    assert build(smooth_loss, {}, key="loss.target", call_functions=False) is smooth_loss
    bound = build(smooth_loss, {"smoothing": 0.1}, key="loss.target", call_functions=False)
    assert isinstance(bound, functools.partial) and bound.keywords == {"smoothing": 0.1}


def test_build_uses_objects_as_they_are_but_refuses_kwargs_for_them():
    loss = nn.MSELoss()
    assert build(loss, None, key="loss.target", call_functions=False) is loss
    with pytest.raises(ConfigError) as info:
        build(loss, {"reduction": "sum"}, key="loss.target", call_functions=False)
    assert str(info.value).startswith("loss.kwargs: loss.target is already an object of type MSELoss")


def test_unaccepted_kwargs_name_key_target_and_accepted_names():
    with pytest.raises(ConfigError) as info:
        build(Loader, {"n": 1, "scal": 2.0}, key="dataset.target")
    message = str(info.value)
    assert message.startswith("dataset.kwargs: Loader does not accept the argument 'scal'. Did you mean 'scale'?")
    assert "It accepts: n, scale." in message
    with pytest.raises(ConfigError, match=r"^loss.kwargs: smooth_loss does not accept the argument 'weight'"):
        build(smooth_loss, {"weight": 1}, key="loss.target", call_functions=False)


def test_missing_required_kwargs_are_named():
    with pytest.raises(ConfigError, match=r"^dataset.kwargs: Loader requires 'n', which is not given\."):
        build(Loader, {}, key="dataset.target")


def test_a_target_that_raises_is_reported_with_its_error():
    def failing(n: int):
        raise FileNotFoundError(f"no shard {n}")

    with pytest.raises(ConfigError, match=r"^dataset.target: .*failing\(\*\*dataset.kwargs\) raised FileNotFoundError: no shard 2"):
        build(failing, {"n": 2}, key="dataset.target")


def test_call_problems_accepts_var_keyword_and_uninspectable_targets():
    assert call_problems(lambda **kw: None, ["anything"]) == []
    assert call_problems(max, ["anything"]) == []
