"""Product image rules: which formats are accepted (by magic bytes, never by the declared type), how big,
how many, and the pixel size read cheaply from the format's header."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from weika_kit.errors import Conflict, InvalidArgument, NotFound

MAX_IMAGE_BYTES = 5 * 1024 * 1024
MAX_IMAGES_PER_PRODUCT = 10
PNG, JPEG, WEBP = "image/png", "image/jpeg", "image/webp"
ACCEPTED = (PNG, JPEG, WEBP)
# Declared types that say nothing about the content: the magic bytes alone decide.
UNDECLARED = ("", "application/octet-stream")


class UnsupportedImage(InvalidArgument):
    code = "unsupported_image"


class ImageTooLarge(InvalidArgument):
    """The gateway answers it 413 (it checks the size itself before calling, too)."""

    code = "image_too_large"


class TooManyImages(Conflict):
    code = "too_many_images"


class ImageNotFound(NotFound):
    code = "image_not_found"


@dataclass(frozen=True)
class Sniffed:
    content_type: str
    width: int
    height: int


def sniff_type(content: bytes) -> str | None:
    """The format the bytes really are, from their signature; None for anything else."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if content.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(content) >= 12 and content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return WEBP
    return None


def _png_size(content: bytes) -> tuple[int, int]:
    # IHDR is always the first chunk: width and height big-endian right after its type
    if len(content) >= 24 and content[12:16] == b"IHDR":
        return struct.unpack(">II", content[16:24])
    return 0, 0


# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(content: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(content):
        if content[i] != 0xFF:
            return 0, 0
        marker = content[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", content[i + 2:i + 4])[0]
        if marker in _SOF_MARKERS and i + 9 <= len(content):
            height, width = struct.unpack(">HH", content[i + 5:i + 9])
            return width, height
        if marker == 0xDA or length < 2:  # image data begins: no frame header before it
            return 0, 0
        i += 2 + length
    return 0, 0


def _webp_size(content: bytes) -> tuple[int, int]:
    chunk = content[12:16]
    if chunk == b"VP8X" and len(content) >= 30:
        return (int.from_bytes(content[24:27], "little") + 1, int.from_bytes(content[27:30], "little") + 1)
    if chunk == b"VP8L" and len(content) >= 25 and content[20] == 0x2F:
        bits = int.from_bytes(content[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(content) >= 30 and content[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", content[26:30])
        return width & 0x3FFF, height & 0x3FFF
    return 0, 0


_SIZE_READERS = {PNG: _png_size, JPEG: _jpeg_size, WEBP: _webp_size}


def inspect(content: bytes, declared_content_type: str = "") -> Sniffed:
    """Accept the bytes as a product image or refuse them with a stable code."""
    if not content:
        raise UnsupportedImage("the image is empty", details={"accepted": list(ACCEPTED)})
    if len(content) > MAX_IMAGE_BYTES:
        raise ImageTooLarge(f"an image may be at most {MAX_IMAGE_BYTES} bytes ({len(content)} given)",
                            details={"max_bytes": MAX_IMAGE_BYTES, "size": len(content)})
    content_type = sniff_type(content)
    if content_type is None:
        raise UnsupportedImage("only PNG, JPEG and WebP images are accepted (the content is none of them)",
                               details={"accepted": list(ACCEPTED)})
    declared = declared_content_type.split(";")[0].strip().lower()
    if declared == "image/jpg":
        declared = JPEG
    if declared not in UNDECLARED and declared != content_type:
        raise UnsupportedImage(f"the content is {content_type} but was declared {declared}",
                               details={"declared": declared, "detected": content_type,
                                        "accepted": list(ACCEPTED)})
    try:
        width, height = _SIZE_READERS[content_type](content)
    except (struct.error, IndexError):  # a truncated header: the size is unknown, the image still stored
        width, height = 0, 0
    return Sniffed(content_type, width, height)
