"""The site stage: the generated mkdocs.yml (config, nav, the runs for the footers) and a mkdocs build
swapped into site_dir only when it succeeds."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from .atlas import Atlas
from .config import PACKAGE, SHARE, Config
from .errors import BuildError, ConfigError
from .formats import activation_words, percent
from .loaders import load_atlas_only, section_configs
from .output import swap_dir, write_if_changed

# A fixed build date unless the caller sets one: the site's bytes depend on its inputs only.
DEFAULT_SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01


def run_facts(atlas: Atlas) -> dict[str, str]:
    """What every page's footer says about the network (templates/overrides/partials/copyright.html)."""
    m, t = atlas.model, atlas.model.config["train"]
    training = (f"{m.epochs} epochs, batch {t['batch_size']}, learning rate {t['learning_rate']} ({t['schedule']}), "
                f"L2 λ = {t['l2']}" if m.epochs else f"imported weights ({m.source})")
    return {"run_id": m.run_id, "network": f"{'-'.join(map(str, m.sizes))} {activation_words(m.network)['network']}",
            "training": training,
            "seed": str(m.seed), "accuracy": percent(m.test_accuracy)}


def site_nav(docs: Path, section_titles: dict[str, str]) -> list:
    """The navigation: each atlas's home, overview pages and class pages, but not its hundreds of neuron
    pages (the neuron table lists them; a sidebar of a thousand links would make every page's HTML,
    and the build, grow with the square of the network). Derived from the files render wrote."""
    def atlas_nav(base: Path, rel: str) -> list:
        items = [{"Home": f"{rel}index.md"}]
        if (base / "probe" / "index.md").is_file():
            items.append({"Probe": f"{rel}probe/index.md"})
        for folder, label in (("neurons", "Neurons"), ("digits", "Digits"), ("classes", "Classes"),
                              ("mistakes", "Mistakes")):
            if not (base / folder / "index.md").is_file():
                continue
            if folder in ("digits", "classes"):
                pages = sorted((p for p in (base / folder).glob("*.md") if p.stem.isdigit()), key=lambda p: int(p.stem))
                items.append({label: [f"{rel}{folder}/index.md"] + [f"{rel}{folder}/{p.name}" for p in pages]})
            else:
                items.append({label: f"{rel}{folder}/index.md"})
        layers = sorted((p for p in (base / "layers").glob("*/index.md") if p.parent.name.isdigit()),
                        key=lambda p: int(p.parent.name))
        # A deeper network's layer pages (one hidden layer has none), each an item of its own: in a "Layers"
        # section, Material's navigation.indexes would make layer 1's index.md the section's own page.
        items += [{f"Layer {p.parent.name}": f"{rel}layers/{p.parent.name}/index.md"} for p in layers]
        items += sorted(f"{rel}{p.name}" for p in base.glob("*.md") if p.name != "index.md")
        return items

    nav = atlas_nav(docs, "")
    for name, title in section_titles.items():
        nav.append({title: atlas_nav(docs / name, f"{name}/")})
    return nav


def atlas_facts(config: Config) -> dict[str, str]:
    """What the footer says about the run of the atlas that `config` builds (run_facts).
    Raises BuildError when its atlas.json is missing or unreadable."""
    return run_facts(load_atlas_only(config))


def mkdocs_config(config: Config) -> Path:
    """Write build/mkdocs.yml, which inherits the repository's and points at this build; returns its path.

    Written by a YAML emitter, so a title or path holding quotes, colons or '#' stays one string;
    the hook makes the theme show the title as text, never as HTML. It also carries the run's facts for
    every page's footer (extra.atlas; generator/mkdocs_hooks.py picks the page's run) and the override's
    absolute path: mkdocs resolves a relative custom_dir against this file, not against the inherited one.
    """
    sections = section_configs(config)
    nav = site_nav(config.docs_dir, {s.site.section: s.site.title for s in sections})
    # The footer names the run of the page's own atlas: the main one, or a section's under its prefix.
    facts = {**atlas_facts(config), "sections": [{"prefix": f"{s.site.section}/", **atlas_facts(s)} for s in sections]}
    text = yaml.safe_dump({"INHERIT": str(SHARE / "mkdocs.yml"), "docs_dir": str(config.docs_dir),
                           "site_name": config.site.title, "hooks": [str(PACKAGE / "mkdocs_hooks.py")],
                           "theme": {"custom_dir": str(SHARE / "templates" / "overrides")}, "extra": {"atlas": facts},
                           "nav": nav},
                          sort_keys=False, allow_unicode=True, width=1 << 16)
    write_if_changed(config.mkdocs_path, text.encode())
    return config.mkdocs_path


def check_site_dir(config: Config) -> None:
    """Raises ConfigError when site_dir holds files but no site mkdocs built: it would be replaced."""
    target = config.site_dir
    if target.exists() and not (target / "sitemap.xml").is_file() and (target.is_file() or any(target.iterdir())):
        raise ConfigError(f"{config.where('site.site_dir')}: 'site.site_dir' is {target}, which holds files "
                          "but no site built by mkdocs (no sitemap.xml); it would be replaced: "
                          "choose an empty or new directory")


def stage_site(config: Config, run) -> None:
    """build/docs/ -> site_dir, built beside the old site and swapped in only when mkdocs succeeds.
    Raises ConfigError (see check_site_dir) or BuildError naming mkdocs's first warning or error."""
    check_site_dir(config)
    target = config.site_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.new.*"):  # left by a run that was killed
        shutil.rmtree(stale, ignore_errors=True)
    fresh = Path(tempfile.mkdtemp(prefix=f".{target.name}.new.", dir=target.parent))
    env = dict(os.environ)
    env.setdefault("SOURCE_DATE_EPOCH", DEFAULT_SOURCE_DATE_EPOCH)
    env["NO_MKDOCS_2_WARNING"] = "1"
    # Not --quiet: it hides the warnings that --strict counts, and a broken link would pass.
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict",
           "--config-file", str(mkdocs_config(config)), "--site-dir", str(fresh)]
    try:
        result = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            lines = re.sub(r"\x1b\[[0-9;]*m", "", result.stderr).splitlines()
            problems = [line for line in lines if line.startswith(("WARNING", "ERROR"))] or lines[-1:] or ["?"]
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise BuildError(f"mkdocs build failed, {target} left as it was: {' '.join(problems[0].split())}{more}")
        os.chmod(fresh, 0o755)
        swap_dir(fresh, target)
    finally:
        if fresh.exists():
            shutil.rmtree(fresh)
    run.say(f"site: built {target}")
