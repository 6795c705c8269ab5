"""Where each page and figure lives: the site's URL scheme, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Names:
    """Page and figure paths, relative to the docs root; the URL scheme lives here and only here.

    An atlas rendered as a section of another site (the 0-vs-1 network under tiny/) has a prefix.
    """
    width: int  # digits of a neuron id
    image_width: int = 5  # digits of a test-image index
    prefix: str = ""  # "" for the main atlas, "tiny/" for a section
    classes: str = "digits"  # directory of the class pages: "digits", or "classes" for other datasets
    # The hidden layer whose units neuron_page(), neuron_fig() and neuron_json() name: the one the outputs read,
    # which the class and mistake pages speak of. 1 for one hidden layer (neurons/NNN/); L for L layers.
    neuron_layer: int = 1

    def home(self) -> str:
        return f"{self.prefix}index.md"

    def image(self, index: int) -> str:
        return f"{self.prefix}images/{index:0{self.image_width}d}.png"

    def nid(self, j: int) -> str:
        return f"{j:0{self.width}d}"

    def neurons_index(self) -> str:
        return self.layer_page(self.neuron_layer) if self.neuron_layer > 1 else f"{self.prefix}neurons/index.md"

    def neuron_page(self, j: int) -> str:
        return self.unit_page(self.neuron_layer, j)

    def neuron_fig(self, j: int, name: str) -> str:
        return self.unit_fig(self.neuron_layer, j, name)

    def units_dir(self, layer: int) -> str:
        """Hidden layer `layer`'s (1 = first) unit folder: neurons/ for the first, which keeps the one-layer
        atlas's addresses, layers/L/neurons/ for deeper ones."""
        return f"{self.prefix}neurons/" if layer == 1 else f"{self.prefix}layers/{layer}/neurons/"

    def unit_page(self, layer: int, j: int) -> str:
        return f"{self.units_dir(layer)}{self.nid(j)}.md"

    def unit_fig(self, layer: int, j: int, name: str) -> str:
        return f"{self.units_dir(layer)}{self.nid(j)}/{name}.png"

    def unit_json(self, layer: int, j: int) -> str:
        return f"{self.units_dir(layer)}{self.nid(j)}.json"

    def layer_page(self, layer: int) -> str:
        """The page of hidden layer `layer` of a deeper network (one hidden layer has none: neurons/ is it)."""
        return f"{self.prefix}layers/{layer}/index.md"

    def layer_fig(self, layer: int, name: str) -> str:
        return f"{self.prefix}layers/{layer}/{name}.png"

    def digits_index(self) -> str:
        return f"{self.prefix}{self.classes}/index.md"

    def digit_page(self, d: int) -> str:
        return f"{self.prefix}{self.classes}/{d}.md"

    def digit_fig(self, d: int, name: str) -> str:
        return f"{self.prefix}{self.classes}/{d}/{name}.png"

    def confusion_fig(self) -> str:
        return f"{self.prefix}{self.classes}/confusion.png"

    def mistakes_index(self) -> str:
        return f"{self.prefix}mistakes/index.md"

    def mistakes_page(self, d: int) -> str:
        return f"{self.prefix}mistakes/{d}.md"

    def mistake_anchor(self, index: int) -> str:
        return f"test-{index:0{self.image_width}d}"

    def neuron_json(self, j: int) -> str:
        return self.unit_json(self.neuron_layer, j)

    def digit_json(self, d: int) -> str:
        return f"{self.prefix}{self.classes}/{d}.json"

    def atlas_json(self) -> str:
        return f"{self.prefix}atlas.json"

    def api_page(self) -> str:
        return f"{self.prefix}api.md"

    def probe_page(self) -> str:
        return f"{self.prefix}probe/index.md"

    def probe_file(self, name: str) -> str:
        """A data file of the probe (generator/probe.py), in the probe page's folder."""
        return f"{self.prefix}probe/{name}"

    @staticmethod
    def url(page: str) -> str:
        """A page's permalink, relative to the site root: neurons/042.md -> neurons/042/, index.md -> ''.

        The form people paste and cite; a server answers it with the folder's index.html."""
        stem = page.removesuffix(".md")
        return "" if stem == "index" else stem.removesuffix("/index") + "/"

    @staticmethod
    def href(page: str) -> str:
        """The file a link to a page names, relative to the site root: neurons/042.md -> neurons/042/index.html.

        Every page is written as its permalink's folder's index.html (generator/mkdocs_hooks.py, on_files),
        so this link works served and opened from the file system, where a folder is not its index.html."""
        return Names.url(page) + "index.html"


def root_of(path: str) -> str:
    """The relative path from the page at `path` back to the docs root: '' or '../' or '../../'."""
    return "../" * path.count("/")
