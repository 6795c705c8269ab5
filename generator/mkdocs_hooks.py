"""MkDocs hooks (listed in the build's generated mkdocs.yml): the site's title is text, never HTML, and
each page's footer names the run of the atlas the page belongs to.

mkdocs-material places `config.site_name` into pages unescaped in some spots (<title>, the header) and
escaped in others (title="..."). Marking the escaped title as safe Markup makes both print it escaped
exactly once, so a title like `<script>alert(1)</script>` shows as those characters.
"""

from markupsafe import escape


def on_config(config):
    config.site_name = escape(str(config.site_name))
    return config


def page_run(atlas: dict | None, url: str) -> dict | None:
    """The run facts for a page at `url` (extra.atlas of the generated mkdocs.yml): a section's when the
    url starts with its prefix (tiny/), the main atlas's otherwise; None without extra.atlas."""
    run = atlas
    for section in (atlas or {}).get("sections", []):
        if url.startswith(section["prefix"]):
            run = section
    return run


def on_page_context(context, page, config, nav):
    context["atlas_run"] = page_run(config.extra.get("atlas"), page.url)
    return context


def on_template_context(context, template_name, config):  # pages without a Markdown source (404.html)
    context["atlas_run"] = config.extra.get("atlas")
    return context
