"""Bad input, faults and limits fed through the CLI: the exit code, one line on stderr, and the earlier
outputs left exactly as they were."""

import errno
import gzip
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import markdown
import numpy as np
import pytest
import yaml
from hypothesis import given, settings, strategies as st

from generator import __main__ as cli
from generator import data, kernels, output
from generator.config import REPO
from generator.errors import BuildError, ConfigError, DataError, TrainingError, WeightsError
from generator.render import md_text

from .conftest import idx_bytes, tiny_overrides, write_dataset

PREVIOUS = b"the previous model.npz, which must survive"
INTERRUPTED = "error: interrupted; finished outputs are intact, unfinished ones were not written\n"


def sets(overrides) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def run(capsys, stage: str, overrides, *extra) -> tuple[int, str, str]:
    code = cli.main([stage, *sets(overrides), *extra])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The message of an error that took exactly one line of stderr, without a traceback."""
    assert err.startswith("error: ") and err.endswith("\n") and err.count("\n") == 1, err
    return err[len("error: "):-1]


def files(directory) -> dict[str, bytes]:
    """Every file under `directory` (hidden temporaries included), by relative path."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def header(magic: int, dims) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(int(n).to_bytes(4, "big") for n in dims)


@pytest.fixture
def small(tmp_path):
    """A small synthetic dataset (60 + 20 images of 6x5, 3 classes) and a build directory that already
    holds a model.npz; returns (root, overrides)."""
    write_dataset(tmp_path / "data")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "model.npz").write_bytes(PREVIOUS)
    return tmp_path, [f"data.dir='{tmp_path / 'data'}'", "data.sha256={}", "site.sections=[]",
                      f"site.build_dir='{tmp_path / 'build'}'",
                      f"site.site_dir='{tmp_path / 'site'}'", "network.hidden=4", "analysis.top_k=2",
                      "train.epochs=2"]


def untouched(root) -> None:
    assert files(root / "build") == {"model.npz": PREVIOUS}
    assert not (root / "site").exists()


# ---- data ------------------------------------------------------------------------------------------

def put(d, name, raw: bytes, gz=True):
    """Replace IDX file `name` in directory `d` with `raw` (gzipped unless gz=False); returns its path."""
    for old in d.glob(f"{name}*"):
        old.unlink()
    path = d / (f"{name}.gz" if gz else name)
    path.write_bytes(gzip.compress(raw, mtime=0) if gz else raw)
    return path


def labels(values) -> bytes:
    return idx_bytes(np.array(values, np.uint8))


def gzip_bomb(d):
    path = d / f"{data.TRAIN_LABELS}.gz"
    with gzip.open(path, "wb") as f:  # 60 good labels, then 64 MiB of zeros in about 64 KiB
        f.write(labels(np.arange(60) % 3))
        for _ in range(64):
            f.write(bytes(1 << 20))
    return path


def flip_middle(d):
    path = d / f"{data.TRAIN_IMAGES}.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    return path


def cut_end(d):
    path = d / f"{data.TRAIN_IMAGES}.gz"
    path.write_bytes(path.read_bytes()[:-40])
    return path


I, L = data.IMAGES_MAGIC, data.LABELS_MAGIC
BAD_DATA = {  # case: (make the bad file in directory d and return its path, words the message must hold)
    "sizes multiply to gigabytes": (lambda d: put(d, data.TRAIN_IMAGES, header(I, [100000, 100000, 100000])),
                                    ["100000x100000x100000 = 1000000000000000 bytes", "more than the limit"]),
    "header claims more images than the file holds": (
        lambda d: put(d, data.TRAIN_IMAGES, header(I, [60000, 6, 5]) + bytes(1800)),
        ["60000x6x5 = 1800000 bytes of data, file holds 1800; the file is truncated"]),
    "gzip bomb": (gzip_bomb, ["60 = 60 bytes of data, file holds more than 60; the file has trailing bytes"]),
    "not an IDX file": (lambda d: put(d, data.TRAIN_IMAGES, b"\x89PNG\r\n\x1a\n" + bytes(64), gz=False),
                        ["bad IDX magic 0x89504e47, expected 0x00000803 (an image file)"]),
    "wrong dimension count": (lambda d: put(d, data.TRAIN_IMAGES, header(0x0802, [60, 30]) + bytes(1800)),
                              ["IDX magic 0x00000802 declares 2 dimensions, expected 3"]),
    "labels where images belong": (lambda d: put(d, data.TEST_IMAGES, labels(np.arange(20) % 3)),
                                   ["IDX magic 0x00000801 marks a label file, expected 0x00000803 (an image file)"]),
    "wrong data type": (lambda d: put(d, data.TRAIN_IMAGES, header(0x0D03, [60, 6, 5]) + bytes(7200)),
                        ["declares 32-bit floats, expected unsigned bytes"]),
    "truncated header": (lambda d: put(d, data.TRAIN_IMAGES, header(I, [60])[:6], gz=False),
                         ["6 bytes is too short for an IDX header of 16 bytes"]),
    "training label out of range": (lambda d: put(d, data.TRAIN_LABELS, labels([0, 1, 2, 0, 1, 200] + [2] * 54)),
                                    ["label 200 (item 5) is out of range", "none is 3"]),
    "labels counted from 1": (lambda d: put(d, data.TRAIN_LABELS, labels(np.arange(60) % 3 + 1)),
                              ["label 1 (item 0) is out of range", "none is 0"]),
    "test label out of range": (lambda d: put(d, data.TEST_LABELS, labels([0, 1, 2, 0, 1, 2, 0, 3] + [0] * 12)),
                                ["label 3 (item 7) is out of range: expected 0..2"]),
    "image and label counts disagree": (lambda d: put(d, data.TEST_LABELS, labels([0] * 19)) and
                                        d / f"{data.TEST_IMAGES}.gz",
                                        ["20 images but t10k-labels-idx1-ubyte.gz has 19 labels"]),
    "corrupt gzip stream": (flip_middle, ["corrupt or truncated gzip stream"]),
    "truncated gzip stream": (cut_end, ["corrupt or truncated gzip stream"]),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_named_in_one_line_and_nothing_is_written(small, capsys, case):
    root, overrides = small
    make, words = BAD_DATA[case]
    path = make(root / "data")
    code, out, err = run(capsys, "train", overrides)
    message = one_line(err)
    assert code == DataError.exit_code == 3 and out == ""
    assert message.startswith(f"{path}: ")
    for w in words:
        assert w in message
    untouched(root)


def test_a_gzip_bomb_costs_no_more_memory_than_its_header_allows(small, capsys):
    import tracemalloc

    root, overrides = small
    gzip_bomb(root / "data")
    tracemalloc.start()
    try:
        assert cli.main(["train", *sets(overrides)]) == 3
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # the bomb holds 64 MiB
    assert "trailing bytes" in capsys.readouterr().err


# ---- config ----------------------------------------------------------------------------------------

BAD_CONFIG = {  # override: words the message must hold (the small fixture has 4 hidden neurons, 60 images)
    "train.epoch=3": ["--set train.epoch: unknown key 'train.epoch' (did you mean 'epochs'?)"],
    "trian.epochs=3": ["--set trian.epochs: unknown section [trian] (did you mean 'train'?)"],
    "train=5": ["expected SECTION.KEY=VALUE"],
    "train.epochs='many'": ["--set train.epochs: 'train.epochs' must be int, got str 'many'"],
    "train.epochs=2.5": ["'train.epochs' must be int, got float 2.5"],
    "train.epochs=0": ["'train.epochs' must be >= 1, got 0"],
    "network.hidden=0": ["'network.hidden' must be >= 1 and <= 10000, got 0"],
    "network.hidden=-3": ["'network.hidden' must be >= 1"],
    "network.hidden=100000000": ["'network.hidden' must be >= 1 and <= 10000, got 100000000"],
    "network.hidden=[30, 0]": ["'network.hidden' must be >= 1 and <= 10000 in every layer, got [30, 0]"],
    "network.hidden=[]": ["'network.hidden' must be an integer or a non-empty list of integers"],
    "train.learning_rate=0": ["'train.learning_rate' must be > 0, got 0.0"],
    "train.learning_rate=-0.5": ["'train.learning_rate' must be > 0, got -0.5"],
    "train.learning_rate=nan": ["'train.learning_rate' must be a finite number, got nan"],
    "train.l2=inf": ["'train.l2' must be a finite number, got inf"],
    "train.seed=-1": ["'train.seed' must be >= 0, got -1"],
    "train.batch_size=0": ["'train.batch_size' must be >= 1"],
    "train.final_lr_fraction=0": ["'train.final_lr_fraction' must be in (0, 1], got 0.0"],
    "analysis.top_k=5": ["--set analysis.top_k: 'analysis.top_k' must be in 1..4 (network.hidden), got 5"],
    "analysis.top_k=0": ["'analysis.top_k' must be in 1..4"],
    "data.train_limit=-1": ["'data.train_limit' must be >= 0"],
    "train.batch_size=61": ["--set train.batch_size: 'train.batch_size' must be in 1..60 "
                            "(the number of training images), got 61"],
    "data.sha256={ train-images = 'ab' }": ["'data.sha256' names an unknown file 'train-images' "
                                            "(did you mean 'train-images-idx3-ubyte'?)"],
    "site.title=''": ["'site.title' must be one line of printable text, got ''"],
    'site.title="a\\nb"': ["'site.title' must be one line of printable text, got 'a\\nb'"],
    "site.site_dir='/'": ["'site.site_dir' must be a directory that does not contain the repository"],
    "site.build_dir='.'": ["--set site.build_dir: 'site.build_dir' must be a directory that does not contain "
                           f"the repository ({REPO})"],
}


@pytest.mark.parametrize("override", BAD_CONFIG)
def test_bad_settings_stop_before_any_work(small, capsys, override):
    root, overrides = small
    code, out, err = run(capsys, "build", [*overrides, override])
    message = one_line(err)
    assert code == ConfigError.exit_code == 2 and out == ""
    for w in BAD_CONFIG[override]:
        assert w in message
    untouched(root)


def test_batch_larger_than_the_limited_data_is_named(small, capsys):
    root, overrides = small
    code, out, err = run(capsys, "train", [*overrides, "data.train_limit=10", "train.batch_size=11"])
    assert code == 2 and "'train.batch_size' must be in 1..10 (the number of training images), got 11" in one_line(err)
    untouched(root)


@pytest.mark.parametrize("site_dir, what", [("build", "site.build_dir"), ("data", "the data"), (".", "the data"),
                                            ("build/docs/site", "outside the generated pages")])
def test_a_site_dir_that_would_swallow_other_files_is_refused(small, capsys, site_dir, what):
    root, overrides = small
    code, _, err = run(capsys, "build", [*overrides, f"site.site_dir='{root / site_dir}'"])
    message = one_line(err)
    assert code == 2 and message.startswith("--set site.site_dir: 'site.site_dir' must be ") and what in message
    untouched(root)


def test_a_config_file_section_that_is_not_a_table(small, capsys):
    root, overrides = small
    config = root / "atlas.toml"
    config.write_text("train = 5\n")
    code, _, err = run(capsys, "train", overrides, "--config", str(config))
    assert code == 2 and one_line(err) == (f"{config}: 'train' must be a table [train], so --set train.epochs "
                                           "cannot apply")
    untouched(root)


def test_site_dir_holding_other_files_is_not_replaced(small, capsys):
    root, overrides = small
    mine = root / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run(capsys, "site", [*overrides, f"site.site_dir='{mine}'"])
    assert code == 2 and "holds files but no site built by mkdocs" in one_line(err)
    assert files(mine) == {"notes.txt": b"keep me"}


# ---- divergence ------------------------------------------------------------------------------------

def test_divergence_names_the_epoch_and_keeps_the_previous_model(tmp_path, capsys):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "model.npz").write_bytes(PREVIOUS)
    code, out, err = run(capsys, "build", [*tiny_overrides(tmp_path), "train.learning_rate=1000"])
    message = one_line(err)
    assert code == TrainingError.exit_code == 4
    assert message.startswith("training diverged in epoch 1 ")
    assert message.endswith("try a smaller one, e.g. --set train.learning_rate=100")
    assert "wrote" not in out
    untouched(tmp_path)


# ---- faults: a full disk, an interrupt -------------------------------------------------------------

def fail_with(error):
    def fail(*args, **kwargs):
        raise error
    return fail


def test_disk_full_while_saving_the_model_keeps_the_previous_one(small, capsys, monkeypatch):
    root, overrides = small
    (root / "build" / ".model.npz.k1ll3d.tmp").write_bytes(b"half a model from a run that was killed")
    monkeypatch.setattr(output.os, "fsync", fail_with(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    code, out, err = run(capsys, "train", overrides)
    assert code == BuildError.exit_code == 5
    assert one_line(err) == (f"{root / 'build' / 'model.npz'}: cannot write (No space left on device); "
                             "free space and rerun")
    untouched(root)  # the killed run's temporary file is gone too
    monkeypatch.undo()
    assert cli.main(["train", *sets(overrides)]) == 0  # the next run starts clean
    # timings.json: each stage records its time since f248b7b
    assert set(files(root / "build")) == {"model.npz", "timings.json"} and files(root / "build")["model.npz"] != PREVIOUS


def test_interrupt_while_saving_the_model_keeps_the_previous_one(small, capsys, monkeypatch):
    root, overrides = small
    monkeypatch.setattr(output.os, "fsync", fail_with(KeyboardInterrupt()))
    code, _, err = run(capsys, "train", overrides)
    assert code == 130 and err == INTERRUPTED
    untouched(root)


def test_ctrl_c_inside_a_numba_kernel_is_an_interrupt_not_an_internal_error(small, capsys, monkeypatch):
    # Seen in CI: SIGINT landing as a compiled function returns makes numba's dispatcher raise
    # SystemError("... returned a result with an exception set") from the KeyboardInterrupt.
    root, overrides = small
    def kernel_hit_by_ctrl_c(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as e:
            raise SystemError("CPUDispatcher(<function epoch_state>) returned a result with an exception set") from e
    monkeypatch.setattr(kernels, "sgd_epoch", kernel_hit_by_ctrl_c)
    code, _, err = run(capsys, "train", overrides)
    assert code == 130 and err == INTERRUPTED
    untouched(root)
    monkeypatch.setattr(kernels, "sgd_epoch", lambda *a, **k: 1 / 0)  # other errors stay internal errors
    code, _, err = run(capsys, "train", overrides)
    assert code == 1 and err.startswith("error: internal error (ZeroDivisionError")


def signal_when(proc, ready, sig, before=lambda: None) -> tuple[str, str]:
    """Read proc's stdout until a line is ready(line), then call before() and send it sig; returns everything
    it printed and its stderr, once it ended (killed in any case, so that no test leaves it running)."""
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if ready(line):
                before()
                proc.send_signal(sig)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    return "".join(seen) + out, err


def test_sigint_during_training_leaves_no_model(small):
    root, overrides = small
    cmd = [sys.executable, "-m", "generator", "train", *sets([*overrides, "train.epochs=1000000"])]
    # A job started in the background (nohup, some CI runners) inherits SIGINT ignored: give the child Ctrl-C back.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    _, err = signal_when(proc, lambda line: line.startswith("  epoch "), signal.SIGINT)  # training runs: Ctrl-C
    assert (proc.returncode, err) == (130, INTERRUPTED)
    untouched(root)


@pytest.fixture
def built_copy(tiny_build, tmp_path):
    """A copy of the tiny build (model, atlas, docs, site) that a test may break; returns (root, overrides)."""
    shutil.copytree(tiny_build / "build", tmp_path / "build")
    shutil.copytree(tiny_build / "site", tmp_path / "site")
    return tmp_path, tiny_overrides(tmp_path)


def test_disk_full_while_writing_atlas_json_keeps_the_previous_one(built_copy, capsys, monkeypatch):
    root, overrides = built_copy
    (root / "build" / "atlas.json").write_bytes(b"the previous atlas")
    before = files(root)
    monkeypatch.setattr(output.os, "fsync", fail_with(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    code, _, err = run(capsys, "analyze", overrides)
    assert code == 5 and one_line(err).startswith(f"{root / 'build' / 'atlas.json'}: cannot write (No space left")
    assert files(root) == before


def test_disk_full_while_rendering_keeps_the_site(built_copy, capsys, monkeypatch):
    root, overrides = built_copy
    before = files(root / "site"), files(root / "build")["atlas.json"]
    (root / "build" / "docs" / "index.md").write_text("an older page")  # so render must write
    monkeypatch.setattr(output.os, "replace", fail_with(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))  # pages skip fsync
    code, _, err = run(capsys, "render", overrides)
    assert code == 5 and "cannot write (No space left on device); free space and rerun" in one_line(err)
    assert (files(root / "site"), files(root / "build")["atlas.json"]) == before


def test_failed_site_swap_keeps_the_old_site(built_copy, capsys, monkeypatch):
    root, overrides = built_copy
    before = files(root / "site")
    replace = os.replace

    def fail_to_put_the_new_site_in_place(src, dst):
        if ".site.new." in str(src):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        replace(src, dst)

    monkeypatch.setattr(output.os, "replace", fail_to_put_the_new_site_in_place)
    code, _, err = run(capsys, "site", overrides)
    assert code == 5
    assert one_line(err) == f"{root / 'site'}: cannot replace (No space left on device); free space and rerun"
    assert files(root / "site") == before
    assert sorted(p.name for p in root.iterdir()) == ["build", "site"]  # no .site.new.*, no .site.old


def test_swap_dir_recovers_a_site_left_half_swapped(tmp_path):
    old, target, new = tmp_path / ".site.old", tmp_path / "site", tmp_path / ".site.new.x"
    old.mkdir()
    (old / "index.html").write_text("old")  # killed after the first rename: site/ is missing
    new.mkdir()
    (new / "index.html").write_text("new")
    (tmp_path / ".site.new.stale").mkdir()
    output.swap_dir(new, target)
    assert (target / "index.html").read_text() == "new" and not old.exists() and not new.exists()


def test_top_k_beyond_the_trained_models_hidden_layer(built_copy, capsys):
    root, overrides = built_copy
    before = files(root)
    code, _, err = run(capsys, "analyze", [*overrides, "network.hidden=100", "analysis.top_k=17"])
    assert code == 2 and one_line(err) == (f"--set analysis.top_k: 'analysis.top_k' must be in 1..16 (the hidden "
                                           f"neurons of {root / 'build' / 'model.npz'}), got 17")
    assert files(root) == before


def test_corrupt_model_and_atlas_files_are_named(small, capsys):
    root, overrides = small
    code, _, err = run(capsys, "analyze", overrides)
    assert code == 5 and one_line(err).startswith(f"{root / 'build' / 'model.npz'}: not a readable model file")
    (root / "build" / "atlas.json").write_text('{"format": 1, "mod')
    code, _, err = run(capsys, "render", overrides)
    assert code == 5 and one_line(err).startswith(f"{root / 'build' / 'atlas.json'}: not a readable atlas")


# ---- exit codes and --debug ------------------------------------------------------------------------

def test_debug_shows_the_traceback(small):
    _, overrides = small
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        cli.main(["train", *sets([*overrides, "train.epoch=3"]), "--debug"])


def test_an_unexpected_error_is_one_line_asking_for_a_report(small, capsys, monkeypatch):
    _, overrides = small
    monkeypatch.setitem(cli.STAGES, "train", fail_with(RuntimeError("boom\nsecond line")))
    code, _, err = run(capsys, "train", overrides)
    assert code == 1
    assert one_line(err) == ("internal error (RuntimeError: boom second line); rerun with --debug for the "
                             "traceback and report it")
    with pytest.raises(RuntimeError):
        cli.main(["train", *sets(overrides), "--debug"])


def test_readme_documents_every_exit_code():
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Errors and exit codes"):]
    section = section[:section.index("\n## ", 3)]
    documented = {int(code) for code in re.findall(r"^\| `?(\d+)`? \|", section, re.M)}
    codes = {0, 1, ConfigError.exit_code, DataError.exit_code, TrainingError.exit_code, BuildError.exit_code,
             WeightsError.exit_code, 130}
    assert documented == codes and len(codes) == 8


# ---- escaping --------------------------------------------------------------------------------------

TITLE = '<script>alert(1)</script> *bold* _it_ `code` [link](x) "q": it\'s # {: #id } & &amp; \\ end'


def test_a_title_from_the_config_shows_literally_in_the_built_html(tiny_build, tmp_path, capsys):
    (tmp_path / "build").mkdir()
    for name in ("atlas.json", "arrays.npz"):
        shutil.copy(tiny_build / "build" / name, tmp_path / "build")
    overrides = [*tiny_overrides(tmp_path), f"site.title={json.dumps(TITLE)}"]
    assert cli.main(["render", *sets(overrides)]) == 0 and cli.main(["site", *sets(overrides)]) == 0
    assert yaml.safe_load((tmp_path / "build" / "mkdocs.yml").read_text())["site_name"] == TITLE
    pages = {p: p.read_text() for p in (tmp_path / "site").rglob("*.html")}
    for page in pages.values():
        assert "<script>alert" not in page and "<em>bold" not in page and "<em>it" not in page
        assert "<code>code" not in page
        assert 'href="x"' not in page
    index = pages[tmp_path / "site" / "index.html"]
    h1 = re.search(r'<h1 id="[^"]*">(.*?)<a class="headerlink"', index).group(1)
    assert html.unescape(h1) == TITLE
    assert html.unescape(re.search(r"<title>(.*?)</title>", index).group(1)) == f"Home - {TITLE}"
    topic = re.search(r'<span class="md-ellipsis">\s*(.*?)\s*</span>', index).group(1)
    assert html.unescape(topic) == TITLE


SITE_MARKDOWN = ["attr_list", "md_in_html", "tables", "toc"]  # as in mkdocs.yml


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.one_of(st.sampled_from("\\`*_{}[]()<>#+-.!|&;:\"'=~ \n\t\x02\x03"), st.characters()),
               min_size=1, max_size=40))
def test_md_text_shows_any_text_literally(text):
    shown = " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", text).split())
    out = markdown.markdown(f"# {md_text(text)}", extensions=SITE_MARKDOWN)
    inner = re.fullmatch(r'<h1(?: id="[^"]*")?>(.*)</h1>', out, re.S).group(1)
    assert "<" not in inner and html.unescape(inner) == shown
    cell = markdown.markdown(f"| a |\n|---|\n| {md_text(text)} |", extensions=SITE_MARKDOWN)
    assert html.unescape(re.search(r"<td>(.*?)</td>", cell, re.S).group(1)) == shown


def warm_kernels_processes(marker: str) -> list[int]:
    """The pids of live `warm_kernels` processes whose environment holds `marker` (Linux /proc)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"warm_kernels" in (proc / "cmdline").read_bytes() \
                    and marker.encode() in (proc / "environ").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def test_the_cli_hands_its_compile_process_to_the_train_stage(small, capsys, monkeypatch):
    """The CLI starts numba's compile (warm.KernelWarmer) before its own imports; the train stage uses that
    process instead of starting a second one, and it is stopped when the stage ends."""
    from generator import stages

    class Counted:
        made = []
        done, failed = "ready in {0:.1f} s", "the kernels' second process failed"

        def __init__(self, config):
            self.stopped = False
            Counted.made.append(self)

        @classmethod
        def start(cls, config):
            return cls(config)

        def wait(self):
            return None, 0.0  # "failed": the training compiles the kernels itself

        def stop(self):
            self.stopped = True

    monkeypatch.setattr(cli, "KernelWarmer", Counted)
    monkeypatch.setattr(stages, "KernelWarmer", Counted)
    code, out, err = run(capsys, "train", small[1])
    assert code == 0, err
    assert len(Counted.made) == 1 and Counted.made[0].stopped
    assert "the first epoch compiles them" in out


def test_the_command_exits_with_mains_code_its_output_all_written(small, tmp_path):
    """`python -m generator` (`command`): after a success it exits at once (os._exit, no teardown), so what it
    printed must already be out and its files written; an error exits with its code as before."""
    root, overrides = small
    cmd = [sys.executable, "-m", "generator", "train", *sets(overrides)]
    ok = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1].startswith("train: ") and "wrote" in ok.stdout.splitlines()[-2]
    model = next(root.rglob("model.npz"))
    with np.load(model) as saved:  # complete: numpy reads every array of it
        assert all(saved[k].size for k in saved.files)
    bad = subprocess.run([*cmd, "--set", "train.epochs=0"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "train.epochs" in bad.stderr
    model.unlink()
    closed = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", *cmd], cwd=REPO, capture_output=True, text=True,
                            timeout=600)  # stdout closed: Python's sys.stdout is None, nothing to flush
    assert closed.returncode == 0 and closed.stderr == "" and model.is_file()
    model.unlink()
    profile = tmp_path / "train.prof"  # under a profiler the process exits as usual, so that it writes its report
    profiled = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(profile), *cmd[1:]], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
    assert profiled.returncode == 0 and profile.stat().st_size > 0 and model.is_file()


def test_the_cli_imports_neither_numpy_nor_the_stages_before_the_compile_starts():
    """What the CLI imports before it starts the compile: the standard library, config.py and warm.py. NumPy
    and the stages' modules take about a second in a fresh .venv, which the compile then runs beside."""
    code = ("import sys; import generator.__main__; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'numba', 'matplotlib') "
            "or m in ('generator.stages', 'generator.train', 'generator.data')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("given, expected", [(None, "0 False"), ("1", "1 True")])
def test_the_cli_turns_numpys_huge_pages_off_unless_the_environment_says(given, expected):
    """The CLI sets NUMPY_MADVISE_HUGEPAGE=0 before NumPy's import (see __main__.py): NumPy then allocates its
    arrays without asking for huge pages, and the stages' child processes inherit the setting. One set by the
    user stays as it is. (NumPy's own getter is private; a test may read it.)"""
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    if given is not None:
        env["NUMPY_MADVISE_HUGEPAGE"] = given
    code = ("import os; import generator.__main__; import numpy as np; "
            "print(os.environ['NUMPY_MADVISE_HUGEPAGE'], np._core.multiarray._get_madvise_hugepage())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == expected


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_sigterm_while_kernels_compile_stops_the_second_process(small, tmp_path):
    """make (or a CI runner) stopping the train stage with SIGTERM while warm.KernelWarmer's second process
    compiles: the stage ends as Ctrl-C does, and that process with it (it used to go on alone)."""
    root, overrides = small
    cache = tmp_path / "numba-cache"  # the marker that finds the second process among the machine's
    # The second process sleeps before it compiles (a sitecustomize that only it runs), so it is certainly
    # still there when the signal comes, however fast this machine compiles.
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import time\nif b'warm_kernels' in open('/proc/self/cmdline', 'rb').read():\n    time.sleep(60)\n")
    cmd = [sys.executable, "-m", "generator", "train", *sets(overrides)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(hook)))
    def into_the_wait():
        assert warm_kernels_processes(str(cache)), "the second process should still be compiling"
        # Into the wait, not the imports just before it: a signal that lands while a C extension
        # initialises (numpy.random's, seen here) can be swallowed there or end the run by SIGINT.
        time.sleep(1)

    # The stage has started the second process and read the data when it names the images.
    out, err = signal_when(proc, lambda line: line.startswith("train: ") and "images" in line, signal.SIGTERM,
                           into_the_wait)
    assert (proc.returncode, err) == (130, INTERRUPTED), out + err
    untouched(root)
    assert not warm_kernels_processes(str(cache))



def test_an_unreadable_numba_cache_is_removed_and_the_kernels_compiled_again(small, tmp_path):
    """A truncated file in numba's cache of the kernels (numba then raises UnpicklingError at every load, and
    every training ended in "internal error"): the train stage says so in one line, removes that cache, compiles
    the kernels again and trains the same weights; the run after it finds a good cache. In a cache of its own
    (NUMBA_CACHE_DIR): the second process's path; the load without one is in test_kernel_parts.py."""
    root, overrides = small
    cache = tmp_path / "numba-cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    model = root / "build" / "model.npz"

    def train_afresh() -> tuple[bytes, str]:
        model.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "generator", "train", *sets(overrides)], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
        with np.load(model) as f:
            return f["W1"].tobytes() + f["W2"].tobytes(), proc.stdout

    weights, _ = train_afresh()
    damaged = sorted(cache.rglob("threads.thread_steps-*.nbc"))
    assert damaged
    for f in damaged:
        f.write_bytes(f.read_bytes()[:1000])
    again, out = train_afresh()
    assert again == weights
    lines = [line for line in out.splitlines() if "kernels" in line]
    assert len(lines) == 1, out
    line = lines[0]
    assert re.fullmatch(r"train: numba's kernels ready in [\d.]+ s, compiled again: the kernels' second process "
                        r"failed \(\S*UnpicklingError: .+\), so numba's cache of them in \S+ was removed", line), line
    assert all(f.stat().st_size > 1000 for f in damaged)  # saved afresh by the repair's second process
    assert not warm_kernels_processes(str(cache))  # none outlives the run
    third, out = train_afresh()
    assert third == weights and "numba's kernels ready in" in out and "failed" not in out
