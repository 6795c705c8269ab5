"""A MkDocs hook (listed in the build's generated mkdocs.yml): the site's title is text, never HTML.

mkdocs-material places `config.site_name` into pages unescaped in some spots (<title>, the header) and
escaped in others (title="..."). Marking the escaped title as safe Markup makes both print it escaped
exactly once, so a title like `<script>alert(1)</script>` shows as those characters.
"""

from markupsafe import escape


def on_config(config):
    config.site_name = escape(str(config.site_name))
    return config
