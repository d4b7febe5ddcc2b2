"""One call for whatever writes generated images: the facts into the file's bytes.

`Stamper(signer)` with a `signing.C2paSigner` embeds the unsigned metadata (so tools that read
only XMP or PNG text see it too) and then signs the result with a C2PA manifest recording the
same facts; `Stamper()` (no key) embeds the unsigned metadata only, and `signed` says which.
"""

import pathlib

from gan_keras.provenance import facts as facts_lib
from gan_keras.provenance import metadata, signing
from gan_keras.storage import atomic


class Stamper:
    def __init__(self, signer: "signing.C2paSigner | None" = None):
        self.signer = signer

    @property
    def signed(self) -> bool:
        return self.signer is not None

    def describe(self) -> str:
        if self.signer is None:
            return "unsigned provenance metadata (XMP + PNG text / GIF comment; no credentials)"
        return f"C2PA content credentials signed by {self.signer.description}"

    def stamp(self, data: bytes, facts: dict, title: str | None = None) -> bytes:
        """`data` (a PNG or GIF) carrying `facts`; ValueError for any other format."""
        fmt = metadata.image_format(data)
        if fmt not in signing.MIME_TYPES:
            raise ValueError(f"provenance is written into PNG and GIF files, not {fmt or 'this'}")
        data = metadata.embed(data, facts, fmt)
        if self.signer is not None:
            manifest = facts_lib.manifest_definition(facts, title)
            data = self.signer.sign(data, signing.MIME_TYPES[fmt], manifest)
        return data

    def stamp_file(self, path, facts: dict) -> None:
        """Rewrites the PNG or GIF at `path` (atomically) carrying `facts`."""
        path = pathlib.Path(path)
        atomic.atomic_write_bytes(path, self.stamp(path.read_bytes(), facts, title=path.name))
