"""The site's colour maps as 8-bit lookup tables: matplotlib's own colours, without importing matplotlib.

figures.py and probe.py colour every image and grid through these five maps. Importing matplotlib to look
them up took 0.75 s of every render stage (its settings machinery, font and text parsers load with it) and
1.7 s more in a fresh .venv, for five fixed tables. TABLES holds matplotlib 3.11's colours
(`matplotlib.colormaps[name]`, 256 each, 10 for tab10) rounded to 8 bits, as the site's PNGs and hex
colours store them; `ColourMap` looks them up by matplotlib's rule. tests/test_colour_maps.py checks every
colour and the rule against matplotlib itself (installed by `make test`); `python -m generator.colour_maps`
prints TABLES anew from the installed matplotlib.
"""

from __future__ import annotations

import numpy as np

# name -> the map's colours in order, 6 hex digits (RRGGBB) each; generated: python -m generator.colour_maps
TABLES = {
    "RdBu_r": (
        "05306106326407346708366a09386d0a3b700c3d730d3f760e41790f437b10457e114781124984134c87144e8a15508d"
        "1752901854931956961a58991b5a9c1c5c9f1d5fa21e61a51f63a82065ab2267ac2369ad246aae266caf276eb02870b1"
        "2a71b22b73b32c75b42e77b52f79b5307ab6327cb7337eb83480b93681ba3783bb3885bc3a87bd3b88be3c8abe3e8cbf"
        "3f8ec0408fc14291c24393c34695c44997c54c99c64f9bc7529dc8569fc959a1ca5ca3cb5fa5cd62a7ce65a9cf68abd0"
        "6bacd16eaed271b0d375b2d478b4d57bb6d67eb8d781bad884bcd987beda8ac0db8dc2dc90c4dd93c6de96c7df98c8e0"
        "9bc9e09dcbe1a0cce2a2cde3a5cee3a7d0e4a9d1e5acd2e5aed3e6b1d5e7b3d6e8b6d7e8b8d8e9bbdaeabddbeac0dceb"
        "c2ddecc5dfecc7e0edcae1eecce2efcfe4efd1e5f0d2e6f0d4e6f1d5e7f1d7e8f1d8e9f1dae9f2dbeaf2ddebf2deebf2"
        "e0ecf3e1edf3e3edf3e4eef4e6eff4e7f0f4e9f0f4eaf1f5ecf2f5edf2f5eff3f5f0f4f6f2f5f6f3f5f6f5f6f7f6f7f7"
        "f7f6f6f7f5f4f8f4f2f8f3f0f8f2eff8f1edf9f0ebf9efe9f9eee7f9ede5f9ebe3faeae1fae9dffae8defae7dcfbe6da"
        "fbe5d8fbe4d6fbe3d4fce2d2fce0d0fcdfcffcdecdfdddcbfddcc9fddbc7fdd9c4fcd7c2fcd5bffcd3bcfbd0b9fbceb7"
        "fbccb4facab1fac8aff9c6acf9c4a9f9c2a7f8bfa4f8bda1f8bb9ef7b99cf7b799f7b596f6b394f6b191f6af8ef5ac8b"
        "f5aa89f5a886f4a683f3a481f2a17ff19e7df09c7bef9979ee9677ec9374eb9172ea8e70e98b6ee8896ce6866ae58368"
        "e48066e37e64e27b62e17860df765ede735cdd7059dc6e57db6b55da6853d86551d7634fd6604dd55d4cd35a4ad25849"
        "d05548cf5246ce4f45cc4c44cb4942c94741c84440c6413ec53e3dc43b3cc2383ac13639bf3338be3036bd2d35bb2a34"
        "ba2832b82531b72230b61f2eb41c2db3192cb1182bae172aab162aa81529a51429a213289f12289c1127991027960f27"
        "930e26900d268d0c258a0b25870a248409248108237f08237c07227906227605217304217003206d02206a011f67001f"
    ),
    "gray_r": (
        "fffffffefefefdfdfdfcfcfcfbfbfbfafafaf9f9f9f8f8f8f7f7f7f6f6f6f5f5f5f4f4f4f3f3f3f2f2f2f1f1f1f0f0f0"
        "efefefeeeeeeedededecececebebebeaeaeae9e9e9e8e8e8e7e7e7e6e6e6e5e5e5e4e4e4e3e3e3e2e2e2e1e1e1e0e0e0"
        "dfdfdfdedededddddddcdcdcdbdbdbdadadad9d9d9d8d8d8d7d7d7d6d6d6d5d5d5d4d4d4d3d3d3d2d2d2d1d1d1d0d0d0"
        "cfcfcfcecececdcdcdcccccccbcbcbcacacac9c9c9c8c8c8c7c7c7c6c6c6c5c5c5c4c4c4c3c3c3c2c2c2c1c1c1c0c0c0"
        "bfbfbfbebebebdbdbdbcbcbcbbbbbbbababab9b9b9b8b8b8b7b7b7b6b6b6b5b5b5b4b4b4b3b3b3b2b2b2b1b1b1b0b0b0"
        "afafafaeaeaeadadadacacacabababaaaaaaa9a9a9a8a8a8a7a7a7a6a6a6a5a5a5a4a4a4a3a3a3a2a2a2a1a1a1a0a0a0"
        "9f9f9f9e9e9e9d9d9d9c9c9c9b9b9b9a9a9a999999989898979797969696959595949494939393929292919191909090"
        "8f8f8f8e8e8e8d8d8d8c8c8c8b8b8b8a8a8a898989888888878787868686858585848484838383828282818181808080"
        "7f7f7f7e7e7e7d7d7d7c7c7c7b7b7b7a7a7a797979787878777777767676757575747474737373727272717171707070"
        "6f6f6f6e6e6e6d6d6d6c6c6c6b6b6b6a6a6a696969686868676767666666656565646464636363626262616161606060"
        "5f5f5f5e5e5e5d5d5d5c5c5c5b5b5b5a5a5a595959585858575757565656555555545454535353525252515151505050"
        "4f4f4f4e4e4e4d4d4d4c4c4c4b4b4b4a4a4a494949484848474747464646454545444444434343424242414141404040"
        "3f3f3f3e3e3e3d3d3d3c3c3c3b3b3b3a3a3a393939383838373737363636353535343434333333323232313131303030"
        "2f2f2f2e2e2e2d2d2d2c2c2c2b2b2b2a2a2a292929282828272727262626252525242424232323222222212121202020"
        "1f1f1f1e1e1e1d1d1d1c1c1c1b1b1b1a1a1a191919181818171717161616151515141414131313121212111111101010"
        "0f0f0f0e0e0e0d0d0d0c0c0c0b0b0b0a0a0a090909080808070707060606050505040404030303020202010101000000"
    ),
    "viridis": (
        "44015444025645045745055946075a46085c460a5d460b5e470d60470e61471063471164471365481467481668481769"
        "48186a481a6c481b6d481c6e481d6f481f70482071482173482374482475482576482677482878482979472a7a472c7a"
        "472d7b472e7c472f7d46307e46327e46337f463480453581453781453882443983443a83443b84433d84433e85423f85"
        "4240864241864142874144874045884046883f47883f48893e49893e4a893e4c8a3d4d8a3d4e8a3c4f8a3c508b3b518b"
        "3b528b3a538b3a548c39558c39568c38588c38598c375a8c375b8d365c8d365d8d355e8d355f8d34608d34618d33628d"
        "33638d32648e32658e31668e31678e31688e30698e306a8e2f6b8e2f6c8e2e6d8e2e6e8e2e6f8e2d708e2d718e2c718e"
        "2c728e2c738e2b748e2b758e2a768e2a778e2a788e29798e297a8e297b8e287c8e287d8e277e8e277f8e27808e26818e"
        "26828e26828e25838e25848e25858e24868e24878e23888e23898e238a8d228b8d228c8d228d8d218e8d218f8d21908d"
        "21918c20928c20928c20938c1f948c1f958b1f968b1f978b1f988b1f998a1f9a8a1e9b8a1e9c891e9d891f9e891f9f88"
        "1fa0881fa1881fa1871fa28720a38620a48621a58521a68522a78522a88423a98324aa8325ab8225ac8226ad8127ad81"
        "28ae8029af7f2ab07f2cb17e2db27d2eb37c2fb47c31b57b32b67a34b67935b77937b87838b9773aba763bbb753dbc74"
        "3fbc7340bd7242be7144bf7046c06f48c16e4ac16d4cc26c4ec36b50c46a52c56954c56856c66758c7655ac8645cc863"
        "5ec96260ca6063cb5f65cb5e67cc5c69cd5b6ccd5a6ece5870cf5773d05675d05477d1537ad1517cd2507fd34e81d34d"
        "84d44b86d54989d5488bd6468ed64590d74393d74195d84098d83e9bd93c9dd93ba0da39a2da37a5db36a8db34aadc32"
        "addc30b0dd2fb2dd2db5de2bb8de29bade28bddf26c0df25c2df23c5e021c8e020cae11fcde11dd0e11cd2e21bd5e21a"
        "d8e219dae319dde318dfe318e2e418e5e419e7e419eae51aece51befe51cf1e51df4e61ef6e620f8e621fbe723fde725"
    ),
    "Oranges": (
        "fff5ebfff5eafff4e9fff4e8fff3e7fff3e6fff2e6fff2e5fff1e4fff1e3fff0e2fff0e1ffefe0ffefdfffeedeffeedd"
        "feeddcfeeddcfeeddbfeecdafeecd9feebd8feebd7feead6feead5fee9d4fee9d3fee8d2fee8d2fee7d1fee7d0fee6cf"
        "fee6cefee5ccfee5cbfee4cafee3c8fee2c7fee2c6fee1c4fee0c3fee0c1fedfc0fedebffedebdfeddbcfedcbbfedcb9"
        "fddbb8fddab6fdd9b5fdd9b4fdd8b2fdd7b1fdd7affdd6aefdd5adfdd5abfdd4aafdd3a9fdd3a7fdd2a6fdd1a4fdd1a3"
        "fdd0a2fdcfa0fdce9efdcd9cfdcb9bfdca99fdc997fdc895fdc794fdc692fdc590fdc48ffdc38dfdc28bfdc189fdc088"
        "fdbf86fdbe84fdbd83fdbb81fdba7ffdb97dfdb87cfdb77afdb678fdb576fdb475fdb373fdb271fdb170fdb06efdaf6c"
        "fdae6afdad69fdac67fdab66fda965fda863fda762fda660fda55ffda45dfda35cfda25afda159fda057fd9f56fd9e54"
        "fd9d53fd9c51fd9b50fd9a4efd994dfd984bfd974afd9649fd9547fd9446fd9344fd9243fd9141fd9040fd8f3efd8e3d"
        "fd8c3bfc8b3afc8a39fc8937fb8836fb8735fb8634fa8532fa8331f98230f9812ef9802df87f2cf87e2bf87d29f77b28"
        "f77a27f67925f67824f67723f57622f57520f5741ff4721ef4711cf3701bf36f1af36e19f26d17f26c16f26b15f16913"
        "f16813f06712ef6612ee6511ee6410ed6310ec620feb610feb600eea5f0ee95e0de85d0ce75c0ce75b0be65a0be5590a"
        "e4580ae45709e35608e25508e15407e15307e05206df5106de5005de4e05dd4d04dc4c03db4b03db4a02da4902d94801"
        "d84801d64701d54601d34601d14501d04501ce4401cd4401cb4302c94202c84202c64102c54102c34002c14002c03f02"
        "be3f02bd3e02bb3d02b93d02b83c02b63c02b53b02b33b02b13a03b03903ae3903ad3803ab3803a93703a83703a63603"
        "a53603a43503a23503a13403a034039f33039e33039c32039b32039a3103993103973003963003952f03942f03932f03"
        "912e04902e048f2d048e2d048c2c048b2c048a2b04892b04882a04862a048529048429048328048128048027047f2704"
    ),
    "tab10": (
        "1f77b4ff7f0e2ca02cd627289467bd8c564be377c27f7f7fbcbd2217becf"
    ),
}


class ColourMap:
    """One of TABLES, called as a matplotlib Colormap is (`Colormap.__call__`, without alpha or bytes):

    - floats: value v in [0, 1] -> colour min(N - 1, floor(N v)); below 0 the first colour, above 1 the
      last, NaN transparent black (0, 0, 0, 0);
    - integers: colour v itself, clipped to [0, N - 1];
    - masked entries of a NumPy masked array: transparent black, as NaN.

    Returns RGBA floats in [0, 1] with alpha 1, shape x.shape + (4,), a tuple for a scalar x; each colour is
    its 8-bit value / 255, so rounding it to 8 bits (as every figure does) gives the table back exactly.
    """

    def __init__(self, name: str):
        """Raises ValueError for a name not in TABLES."""
        if name not in TABLES:
            raise ValueError(f"no colour map {name!r} in colour_maps.TABLES (known: {', '.join(TABLES)})")
        self.name = name
        self.hex = TABLES[name]
        rgb = np.frombuffer(bytes.fromhex(self.hex), np.uint8).reshape(-1, 3)
        self.N = len(rgb)
        self.rgba = np.concatenate([rgb / 255.0, np.ones((self.N, 1))], axis=1)  # (N, 4) float64

    def __call__(self, x):
        xa = np.array(x, copy=True)
        if xa.dtype.kind == "f":
            xa *= self.N
            xa[xa == self.N] = self.N - 1
        under, over = xa < 0, xa >= self.N
        bad = np.ma.getmaskarray(x) if np.ma.is_masked(x) else np.isnan(xa)
        with np.errstate(invalid="ignore"):
            index = xa.astype(int)
        index[under], index[over] = 0, self.N - 1
        rgba = self.rgba.take(index, axis=0, mode="clip")
        rgba[bad] = 0.0
        return tuple(rgba) if rgba.ndim == 1 else rgba

    def hex_colour(self, i: int) -> str:
        """Colour i (0 <= i < N) as '#rrggbb'. Raises IndexError for another i."""
        if not 0 <= i < self.N:
            raise IndexError(f"colour {i} of the {self.N} of {self.name}")
        return f"#{self.hex[6 * i:6 * i + 6]}"


def tables_source() -> str:
    """TABLES as this module writes it, from the installed matplotlib (a test and `make test` dependency)."""
    import matplotlib
    lines = []
    for name in TABLES:
        cmap = matplotlib.colormaps[name]
        rgb = np.round(cmap(np.arange(cmap.N))[:, :3] * 255).astype(np.uint8)
        digits = "".join(f"{r:02x}{g:02x}{b:02x}" for r, g, b in rgb)
        chunks = "".join(f'        "{digits[i:i + 96]}"\n' for i in range(0, len(digits), 96))
        lines.append(f'    "{name}": (\n{chunks}    ),\n')
    return "".join(lines)


if __name__ == "__main__":
    print(f"TABLES = {{\n{tables_source()}}}")
