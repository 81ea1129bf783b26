"""Your own models: any timm architecture (`timm/<name>`) and a network from a file
(`path.py:callable`), checked when a study loads (torch-free) and when the job builds them."""

import hashlib
import json
import re
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, environment, snakemake

from imgzoo.cli import main
from imgzoo.config import Run, Study, load_study
from imgzoo.errors import ConfigError
from imgzoo.models import catalog, timm_names
from imgzoo.spec import Settings

DOCS = (REPO / "docs" / "models.md").read_text()


def docs_block(language: str) -> str:
    """The first `language` block of docs/models.md's "Your own models", as written."""
    section = DOCS.split("## Your own models", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


# The network of docs/models.md, a user's own: a convolution and a linear head.
NET = docs_block("python")
# Bad files, each as a user might write it.
FILES = {
    "nets/net.py": NET,
    "nets/broken.py": "def build(num_classes, image_size, in_chans):\n    return nn.Linear(\n",
    "nets/no_shape.py": "def build(classes, size, chans):\n    pass\n",
}


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """A working directory with the files above (model paths are relative to it)."""
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def config_of(model, model_args=None, **experiment):
    return {
        "name": "own",
        "datasets": ["digits"],
        "seeds": [0],
        "experiments": {"x": {"model": model, "model_args": model_args or {}, **experiment}},
    }


# --- names ----------------------------------------------------------------------------------


def test_the_names_of_timm_and_file_models():
    assert catalog.resolve("timm/resnet10t", {"drop_rate": 0.1}) == (
        "timm/resnet10t", {"drop_rate": 0.1},
    )
    assert catalog.model_file("nets/net.py:build") == ("nets/net.py", "build")
    assert catalog.model_file("mlp") is None and catalog.timm_architecture("mlp") is None
    with pytest.raises(KeyError):
        catalog.resolve("timm/")
    # the workflow asks a weight grid of every timm and file model, and of the fine-tuned presets
    assert catalog.has_first_layer_view("timm/resnet10t")
    assert catalog.has_first_layer_view("nets/net.py:build")
    assert catalog.has_first_layer_view("swin-base-pretrained")
    assert not catalog.has_first_layer_view("perceiver")


def test_the_fine_tuning_presets_are_timm_models_with_a_weights_file():
    presets = [n for n, p in catalog.PRESETS.items() if "pretrained_file" in p.get("needs", [])]
    assert sorted(presets) == ["mixer-b16-pretrained", "swin-base-pretrained", "tnt-s-pretrained"]
    family, args = catalog.resolve("swin-base-pretrained", {"pretrained_file": "w.safetensors"})
    assert (family, args) == ("timm/swin_base_patch4_window7_224",
                              {"pretrained_file": "w.safetensors"})


# --- mistakes found when the study loads, before any job --------------------------------------

BAD = [
    # (model, model_args, the message after "config 'experiments.x.")
    ("timm/resnet10tt", {},
     "model': unknown timm architecture 'resnet10tt' (did you mean timm/resnet10t"),
    ("timm/resnet10t", {"num_classes": 5}, "model_args': model 'timm/resnet10t': num_classes is "
     "not a model argument here (imgzoo sets it from the dataset)"),
    ("timm/vit_tiny_patch16_224", {"img_size": 32}, "img_size is not a model argument here"),
    ("timm/resnet10t", {"pretrained": True}, "imgzoo downloads nothing: give pretrained_file"),
    ("timm/resnet10t", {"input_size": 64}, "input_size is the size a pretrained_file's weights"),
    ("timm/resnet10t", {"normalizer": "batch"}, "normalizer='batch' is not one of fixed"),
    ("swin-base-pretrained", {}, "model_args': model 'swin-base-pretrained' needs pretrained_file"),
    ("nets/missing.py:build", {}, "model': model file 'nets/missing.py' does not exist"),
    ("nets/net.py", {}, "model': model file 'nets/net.py' names no callable: write "
     "'nets/net.py:build'"),
    ("nets/net.py:make", {}, "model': model file 'nets/net.py': defines no 'make' at its top "
     "level (it defines build, nn)"),
    ("nets/net.py:build", {"depth": 2}, "model': model file 'nets/net.py': build() takes no model "
     "argument 'depth' (its arguments: width)"),
    ("nets/net.py:build", {"image_size": 16}, "model_args': model 'nets/net.py:build': image_size "
     "is not a model argument here"),
    ("nets/broken.py:build", {}, "model': model file 'nets/broken.py': line 2: "),
    ("nets/no_shape.py:build", {}, "build() must take num_classes, image_size, in_chans"),
]


@pytest.mark.parametrize("model,model_args,message", BAD, ids=[f"{b[0]}-{b[2][-20:]}" for b in BAD])
def test_a_bad_model_stops_the_study_and_imgzoo_check_in_one_line(
    in_tmp, capsys, model, model_args, message
):
    with pytest.raises(ConfigError, match="^config 'experiments.x.") as loaded:
        Study(config_of(model, model_args))
    assert message in str(loaded.value)
    (in_tmp / "study.yaml").write_text(yaml.safe_dump(config_of(model, model_args)))
    assert main(["check", "--config", "study.yaml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_callable_defined_under_if_or_try_is_found(in_tmp):
    (in_tmp / "nets" / "guarded.py").write_text(
        "try:\n    import torch\nexcept ImportError:\n    torch = None\n"
        "if torch is not None:\n    def build(num_classes, image_size, in_chans, width=4):\n"
        "        pass\n"
    )
    Study(config_of("nets/guarded.py:build", {"width": 2}))
    with pytest.raises(ConfigError, match="build\\(\\) takes no model argument 'depth'"):
        Study(config_of("nets/guarded.py:build", {"depth": 2}))


def test_a_sweep_of_a_file_model_checks_the_swept_argument(in_tmp):
    config = config_of("nets/net.py:build")
    config["sweeps"] = {"w": {"base": "x", "grid": {"width": [4, 8]}}}
    assert {"x@width=4", "x@width=8"} <= set(Study(config).experiments)
    config["sweeps"] = {"w": {"base": "x", "grid": {"widht": [4, 8]}}}
    with pytest.raises(ConfigError, match="takes no model argument 'widht'"):
        Study(config)


def test_snakemake_stops_at_a_bad_model_before_any_job(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "net.py").write_text(NET)
    for model, message in [
        ("nets/net.py:biuld", "model file 'nets/net.py': defines no 'biuld'"),
        ("timm/resnet10tt", "unknown timm architecture 'resnet10tt' (did you mean timm/resnet10t"),
    ]:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config_of(model)))
        result = snakemake(tmp_path, "--cores", "1", "-n", timeout=120)
        assert result.returncode != 0
        assert f"imgzoo: config error: config 'experiments.x.model': {message}" in result.stderr
        assert not (tmp_path / "results").exists()


# --- the login node: no torch ----------------------------------------------------------------

LOAD = ("import sys; from imgzoo.config import load_study; s = load_study(['study.yaml']); "
        "[s.spec(r) for r in s.runs]; "
        "assert not {'torch', 'timm'} & set(sys.modules), 'torch or timm imported'")


def test_a_study_of_timm_and_file_models_loads_without_torch_and_caches_timms_names(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "net.py").write_text(NET)
    config = config_of("timm/resnet10t")
    config["experiments"]["mine"] = {"model": "nets/net.py:build"}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(config))
    env = environment(XDG_CACHE_HOME=str(tmp_path / "cache"))

    def load():
        return subprocess.run([sys.executable, "-c", LOAD], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    # a fresh cache: a child process lists timm's names once, for this version of timm
    assert load().returncode == 0
    cache = tmp_path / "cache" / "imgzoo" / f"timm-{timm_names.timm_version()}-architectures.json"
    names = json.loads(cache.read_text())
    assert "resnet10t" in names and "vit_tiny_patch16_224" in names
    # afterwards the cache answers: a list without resnet10t makes it unknown
    cache.write_text(json.dumps(["resnet14t"]))
    again = load()
    assert again.returncode != 0
    assert "unknown timm architecture 'resnet10t' (did you mean timm/resnet14t?)" in again.stderr


# --- settings -------------------------------------------------------------------------------


def test_the_settings_of_built_in_models_are_unchanged_byte_for_byte():
    settings = Settings("mlp", {"hidden": [8]}, {"epochs": 1}, {"image_size": 16})
    assert settings.to_json() == (
        '{"data": {"image_size": 16}, "family": "mlp", "model_args": {"hidden": [8]}, '
        '"train": {"epochs": 1}}'
    )
    for path in sorted((REPO / "config" / "studies").glob("*.yaml")):
        study = load_study([path], check_sources=False)
        for run in study.runs[:20]:
            assert set(study.spec(run).settings.to_dict()) == {
                "family", "model_args", "train", "data",
            }, path.name


def test_a_file_models_hash_is_in_its_settings_and_changes_only_its_runs(in_tmp):
    config = config_of("nets/net.py:build", {"width": 4})
    config["experiments"]["mlp"] = {"model": "mlp"}
    runs = {name: Run("digits", name, 0) for name in ("x", "mlp")}
    before = {name: Study(config).spec(run) for name, run in runs.items()}
    sha = hashlib.sha256((in_tmp / "nets" / "net.py").read_bytes()).hexdigest()
    settings = before["x"].settings
    assert settings.family == "nets/net.py:build" and settings.model_file_sha256 == sha
    assert Settings.from_dict(json.loads(settings.to_json())) == settings
    assert Study(config).model_file(runs["x"]) == "nets/net.py"
    assert Study(config).model_file(runs["mlp"]) is None

    (in_tmp / "nets" / "net.py").write_text(NET + "# a comment is an edit too\n")
    after = {name: Study(config).spec(run) for name, run in runs.items()}
    assert after["x"].key() != before["x"].key()
    assert after["mlp"].key() == before["mlp"].key()


# A network spread over files, as researchers write one: the file imports a module beside it,
# which imports a package beside it (and a relative import inside that package).
SPREAD = {
    "nets/spread.py": "import torch\nfrom blocks import Block\n\n\n"
                      "def build(num_classes, image_size, in_chans):\n"
                      "    return torch.nn.Sequential(Block(in_chans), torch.nn.Flatten(),\n"
                      "        torch.nn.Linear(in_chans * image_size ** 2, num_classes))\n",
    "nets/blocks.py": "from torch import nn\nfrom parts.act import act\n\n\n"
                      "class Block(nn.Module):\n    def __init__(self, c):\n"
                      "        super().__init__()\n"
                      "        self.conv, self.act = nn.Conv2d(c, c, 3, padding=1), act()\n\n"
                      "    def forward(self, x):\n        return self.act(self.conv(x))\n",
    "nets/parts/__init__.py": "",
    "nets/parts/act.py": "from . import scale\n\n\n"
                         "def act():\n    from torch import nn\n    return nn.ReLU()\n",
    "nets/parts/scale.py": "FACTOR = 1.0\n",
    "nets/unused.py": "raise RuntimeError('never imported')\n",
}


def test_the_modules_a_file_imports_beside_it_are_its_source(in_tmp):
    for name, text in SPREAD.items():
        (in_tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (in_tmp / name).write_text(text)
    config = config_of("nets/spread.py:build")
    config["experiments"]["net"] = {"model": "nets/net.py:build"}
    run, other = Run("digits", "x", 0), Run("digits", "net", 0)
    assert Study(config).model_sources(run) == [
        "nets/spread.py", "nets/blocks.py", "nets/parts/__init__.py", "nets/parts/act.py",
        "nets/parts/scale.py",
    ]
    assert Study(config).model_sources(other) == ["nets/net.py"]  # it imports torch only
    before = {r: Study(config).spec(r).key() for r in (run, other)}
    # the hash covers every module of the source: an edit of the deepest re-runs its runs only
    (in_tmp / "nets/parts/scale.py").write_text("FACTOR = 2.0\n")
    after = {r: Study(config).spec(r).key() for r in (run, other)}
    assert after[run] != before[run] and after[other] == before[other]
    # a module beside the file that it does not import is not its source
    (in_tmp / "nets/unused.py").write_text("# edited\n")
    assert Study(config).spec(run).key() == after[run]


def test_imgzoo_check_says_which_modules_beside_a_file_are_watched(in_tmp, capsys):
    for name, text in SPREAD.items():
        (in_tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (in_tmp / name).write_text(text)
    config = {**config_of("nets/spread.py:build"), "seeds": [0, 1]}
    config["experiments"]["net"] = {"model": "nets/net.py:build"}
    config["experiments"]["mlp"] = {"model": "mlp"}  # no file: nothing to say
    (in_tmp / "study.yaml").write_text(yaml.safe_dump(config))
    assert main(["check", "--config", "study.yaml"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("config OK: study 'own'")
    assert printed[1:] == [  # once for its two runs; nothing for a file that imports none
        "model file nets/spread.py imports nets/blocks.py, nets/parts/__init__.py, "
        "nets/parts/act.py, nets/parts/scale.py from beside it (an edit of any of them re-runs "
        "its runs)"
    ]
