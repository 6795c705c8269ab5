import pytest

from generator.config import REPO, load_config
from generator.errors import ConfigError


def test_defaults_file_is_the_question_network():
    c = load_config(REPO / "atlas.toml")
    assert c.network.hidden == 100 and c.analysis.top_k == 5 and c.data.dir == "data/mnist"
    assert c.build_dir == REPO / "build" and c.site_dir == REPO / "site"
    assert len(c.data.sha256) == 4


def test_overrides_are_typed():
    c = load_config(REPO / "atlas.toml", ["train.epochs=3", "train.learning_rate=1", "site.title=My atlas"])
    assert c.train.epochs == 3 and c.train.learning_rate == 1.0 and isinstance(c.train.learning_rate, float)
    assert c.site.title == "My atlas"


def test_paths_resolve_against_the_config_file(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text('[site]\nbuild_dir = "out"\n')
    assert load_config(path).build_dir == tmp_path / "out"


@pytest.mark.parametrize("override, words", [
    ("train.epoch=3", ["train.epoch", "did you mean 'epochs'"]),
    ("trian.epochs=3", ["[trian]", "did you mean 'train'"]),
    ("train.epochs=2.5", ["train.epochs", "must be int"]),
    ("train.epochs=true", ["train.epochs", "must be int"]),
    ("network.hidden=0", ["network.hidden", ">= 1"]),
    ("train.learning_rate=-1", ["train.learning_rate", "> 0"]),
    ("train.schedule='step'", ["train.schedule", "'cosine'"]),
    ("epochs", ["SECTION.KEY=VALUE"]),
])
def test_bad_settings_are_named(override, words):
    with pytest.raises(ConfigError) as e:
        load_config(REPO / "atlas.toml", [override])
    message = str(e.value)
    assert "\n" not in message
    for w in words:
        assert w in message


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
