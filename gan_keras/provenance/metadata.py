"""The facts as unsigned metadata, written into the image file's bytes, and read back.

PNG: three chunks after IHDR (the pixels, IDAT, are not touched or re-encoded):
  * iTXt ``XML:com.adobe.xmp``: an XMP packet with IPTC's Iptc4xmpExt:DigitalSourceType
    (trainedAlgorithmicMedia), xmp:CreatorTool, and the model and recipe (gan: namespace);
  * iTXt ``gan_keras:provenance``: the facts as JSON;
  * tEXt ``Software``: "gan_keras <version>".
GIF: a Comment extension holding the facts' JSON and an XMP application extension (the XMP
packet, with the 258-byte "magic trailer" of the XMP spec), after the global colour table.

This is a claim, not a credential: anyone can write or strip it. Nothing here says signed.
"""

import json
import re
import struct
import xml.sax.saxutils
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = "XML:com.adobe.xmp"
FACTS_KEYWORD = "gan_keras:provenance"
SOFTWARE_KEYWORD = "Software"
GAN_XMP_NS = "https://gan-keras.invalid/ns/provenance/1.0/"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
GIF_COMMENT_PREFIX = b"gan_keras:provenance "
_GIF_XMP_APP = b"XMP DataXMP"
# The XMP spec's GIF trailer: whatever byte a reader takes as a sub-block length inside the
# packet, it lands in this ramp and reaches the 0 terminator.
_GIF_XMP_TRAILER = bytes([1]) + bytes(range(255, -1, -1)) + b"\x00"


class MetadataError(ValueError):
    """Bytes that are not the PNG or GIF they claim to be."""


# --------------------------------------------------------------------------
# XMP
# --------------------------------------------------------------------------


def xmp_packet(facts: dict) -> str:
    """An XMP packet: IPTC digital source type, creator tool, model and recipe."""
    agent = facts["software_agent"]
    model = facts.get("model") or {}

    def attr(name: str, value) -> str:
        return f"\n    {name}={xml.sax.saxutils.quoteattr(str(value))}"

    attrs = (
        attr("Iptc4xmpExt:DigitalSourceType", facts["digital_source_type"])
        + attr("xmp:CreatorTool", f"{agent['name']} {agent['version']}")
        + attr("xmp:CreateDate", facts.get("created", ""))
        + attr("gan:ModelName", model.get("name", ""))
        + attr("gan:ModelVersion", model.get("version", ""))
        + attr("gan:ExportFingerprint", model.get("export_fingerprint", ""))
        + attr("gan:Recipe", json.dumps(facts.get("recipe", {}), sort_keys=True))
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:Iptc4xmpExt="{IPTC_EXT_NS}"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:gan="{GAN_XMP_NS}"{attrs}/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )


def digital_source_type_from_xmp(xmp: str) -> str | None:
    """Iptc4xmpExt:DigitalSourceType of an XMP packet (attribute or element form)."""
    match = re.search(r"Iptc4xmpExt:DigitalSourceType(?:=\"([^\"]*)\"|>([^<]*)<)", xmp or "")
    if not match:
        return None
    return xml.sax.saxutils.unescape(match.group(1) or match.group(2), {"&quot;": '"'})


# --------------------------------------------------------------------------
# PNG chunks
# --------------------------------------------------------------------------


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """[(type, data)] of a PNG, in order; MetadataError if it is not one."""
    if not data.startswith(PNG_SIGNATURE):
        raise MetadataError("not a PNG (no PNG signature)")
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise MetadataError(f"truncated PNG chunk {kind!r}")
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos = end
        if kind == b"IEND":
            break
    if not chunks or chunks[0][0] != b"IHDR":
        raise MetadataError("not a PNG (no IHDR chunk first)")
    return chunks


def _itxt(keyword: str, text: str) -> bytes:
    # keyword \0, compression flag 0, method 0, language "" \0, translated keyword "" \0, text
    return keyword.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")


def _parse_itxt(data: bytes) -> tuple[str, str]:
    keyword, rest = data.split(b"\0", 1)
    compressed, rest = rest[0], rest[2:]
    _language, rest = rest.split(b"\0", 1)
    _translated, text = rest.split(b"\0", 1)
    if compressed:
        text = zlib.decompress(text)
    return keyword.decode("latin-1"), text.decode("utf-8")


def png_text(data: bytes) -> dict[str, str]:
    """The PNG's tEXt, zTXt and iTXt entries by keyword."""
    texts = {}
    for kind, body in png_chunks(data):
        try:
            if kind == b"tEXt":
                keyword, text = body.split(b"\0", 1)
                texts[keyword.decode("latin-1")] = text.decode("latin-1")
            elif kind == b"zTXt":
                keyword, text = body.split(b"\0", 1)
                texts[keyword.decode("latin-1")] = zlib.decompress(text[1:]).decode("latin-1")
            elif kind == b"iTXt":
                keyword, text = _parse_itxt(body)
                texts[keyword] = text
        except (ValueError, IndexError, zlib.error, UnicodeDecodeError):
            continue  # a malformed text chunk is not ours
    return texts


_OUR_KEYWORDS = {XMP_KEYWORD.encode(), FACTS_KEYWORD.encode()}


def _is_ours(kind: bytes, body: bytes) -> bool:
    return kind in (b"iTXt", b"tEXt") and body.split(b"\0", 1)[0] in _OUR_KEYWORDS


def embed_png(data: bytes, facts: dict) -> bytes:
    """The PNG with the facts' XMP, JSON and Software chunks after IHDR (replacing earlier
    ones of ours); the pixel data is copied byte for byte."""
    chunks = [(kind, body) for kind, body in png_chunks(data) if not _is_ours(kind, body)]
    agent = facts["software_agent"]
    ours = [
        (b"iTXt", _itxt(XMP_KEYWORD, xmp_packet(facts))),
        (b"iTXt", _itxt(FACTS_KEYWORD, json.dumps(facts, sort_keys=True))),
    ]
    if not any(k == b"tEXt" and b.startswith(b"Software\0") for k, b in chunks):
        ours.append((b"tEXt", f"{SOFTWARE_KEYWORD}\0{agent['name']} {agent['version']}".encode()))
    out = [PNG_SIGNATURE, _chunk(*chunks[0])]
    out += [_chunk(kind, body) for kind, body in ours]
    out += [_chunk(kind, body) for kind, body in chunks[1:]]
    return b"".join(out)


# --------------------------------------------------------------------------
# GIF extensions
# --------------------------------------------------------------------------


def _gif_header_end(data: bytes) -> int:
    """Offset just after the header, logical screen descriptor and global colour table."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise MetadataError("not a GIF")
    flags = data[10]
    table = 3 * (2 ** ((flags & 0x07) + 1)) if flags & 0x80 else 0
    return 13 + table


def _sub_blocks(payload: bytes) -> bytes:
    return (
        b"".join(
            bytes([len(payload[i : i + 255])]) + payload[i : i + 255]
            for i in range(0, len(payload), 255)
        )
        + b"\x00"
    )


def embed_gif(data: bytes, facts: dict) -> bytes:
    """The GIF with a Comment extension (the facts' JSON) and an XMP application extension
    after its global colour table (GIF89a: extensions need it)."""
    end = _gif_header_end(data)
    comment = GIF_COMMENT_PREFIX + json.dumps(facts, sort_keys=True).encode("utf-8")
    xmp = xmp_packet(facts).encode("utf-8")
    extensions = (
        b"\x21\xfe" + _sub_blocks(comment) + b"\x21\xff\x0b" + _GIF_XMP_APP + xmp + _GIF_XMP_TRAILER
    )
    return b"GIF89a" + data[6:end] + extensions + data[end:]


def _gif_comments(data: bytes) -> list[bytes]:
    """The payloads of a GIF's Comment extensions before the first image (ours go there)."""
    pos, comments = _gif_header_end(data), []
    while pos < len(data) and data[pos] == 0x21:
        label, pos = data[pos + 1], pos + 2
        if label == 0xFF:
            block = data[pos + 1 : pos + 1 + data[pos]]
            pos += 1 + data[pos]
            if block == _GIF_XMP_APP:  # the raw packet, then the trailer
                trailer = data.find(_GIF_XMP_TRAILER, pos)
                if trailer < 0:
                    break
                pos = trailer + len(_GIF_XMP_TRAILER)
                continue
        payload = b""
        while pos < len(data) and data[pos] != 0:
            payload += data[pos + 1 : pos + 1 + data[pos]]
            pos += 1 + data[pos]
        pos += 1
        if label == 0xFE:
            comments.append(payload)
    return comments


def _gif_xmp(data: bytes) -> str | None:
    start = data.find(b"\x21\xff\x0b" + _GIF_XMP_APP)
    if start < 0:
        return None
    start += 3 + len(_GIF_XMP_APP)
    end = data.find(_GIF_XMP_TRAILER, start)
    return data[start:end].decode("utf-8", "replace") if end > 0 else None


# --------------------------------------------------------------------------
# Reading back
# --------------------------------------------------------------------------


def embed(data: bytes, facts: dict, fmt: str) -> bytes:
    """`embed_png` or `embed_gif` by format ("png" or "gif")."""
    if fmt == "png":
        return embed_png(data, facts)
    if fmt == "gif":
        return embed_gif(data, facts)
    raise ValueError(f"no unsigned metadata for format {fmt!r} (png or gif)")


def image_format(data: bytes) -> str | None:
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def read_metadata(data: bytes) -> dict | None:
    """{"facts", "digital_source_type", "xmp"} of the unsigned metadata, or None without
    any. `facts` is None when only the XMP survives (e.g. a tool that keeps XMP only)."""
    fmt = image_format(data)
    facts, xmp = None, None
    try:
        if fmt == "png":
            texts = png_text(data)
            xmp = texts.get(XMP_KEYWORD)
            raw = texts.get(FACTS_KEYWORD)
            facts = json.loads(raw) if raw else None
        elif fmt == "gif":
            xmp = _gif_xmp(data)
            for comment in _gif_comments(data):
                if comment.startswith(GIF_COMMENT_PREFIX):
                    facts = json.loads(comment[len(GIF_COMMENT_PREFIX) :])
    except (MetadataError, ValueError):
        return None
    if not isinstance(facts, dict):
        facts = None
    source = digital_source_type_from_xmp(xmp) if xmp else None
    if facts is None and source is None:
        return None
    return {
        "facts": facts,
        "digital_source_type": source or (facts or {}).get("digital_source_type"),
        "xmp": xmp,
    }
