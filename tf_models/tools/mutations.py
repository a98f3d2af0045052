"""Hostile input files made from real ones: the cases `tf_models.tools.fuzz` feeds to every loader.

A case is `(name, bytes, extension)`. Seeds are real files from
../shared/datasets (mammograms, chest X-rays, Carvana images and GIF masks,
CIFAR-10 JPEGs, ISBI membranes, MNIST idx), pydicom's bundled test files, and
a 16-bit MONOCHROME1 DICOM made from a real mammogram. Each case applies one
mutation, chosen with a seeded generator, so a run is reproducible.
"""

import gzip
import io
import pathlib
import struct
import zlib

import numpy as np

SEED_FOLDERS = {
    "mammography": ("mammography", "*.png", 12),
    "chest_xray": ("chest_xray/test/NORMAL", "*.jpeg", 8),
    "carvana_image": ("carvana_hr/train", "*.jpg", 6),
    "carvana_mask": ("carvana_hr/train_masks", "*.gif", 6),
    "cifar10": ("cifar10/test/cat", "*.jpg", 6),
    "membrane": ("membrane/image", "*.png", 4),
}
BUNDLED_DICOM = ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "JPGExtended.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "image_dfl.dcm")
BROKEN_DICOM = ("MR_truncated.dcm", "rtplan.dcm", "rtplan_truncated.dcm", "no_meta.dcm", "badVR.dcm",
                "SC_rgb_small_odd.dcm", "examples_palette.dcm", "meta_missing_tsyntax.dcm", "rtdose.dcm",
                "waveform_ecg.dcm", "J2K_pixelrep_mismatch.dcm", "SC_rgb_jpeg.dcm")


def seed_files(datasets_root):
    """[(name, bytes, extension)] of real seed files; raises `ValueError` when none are found."""
    import pydicom.data

    root = pathlib.Path(datasets_root)
    seeds = []
    for label, (folder, pattern, count) in SEED_FOLDERS.items():
        for path in sorted((root / folder).glob(pattern))[:count]:
            seeds.append((f"{label}/{path.name}", path.read_bytes(), path.suffix.lower()))
    idx = root / "mnist" / "t10k-labels-idx1-ubyte.gz"
    if idx.is_file():
        labels = gzip.decompress(idx.read_bytes())[8:208]
        header = (2049).to_bytes(4, "big") + len(labels).to_bytes(4, "big")
        seeds.append(("mnist/t10k-labels-idx1-ubyte.gz[:200]", gzip.compress(header + labels), ".gz"))
    if not seeds:
        raise ValueError(f"{root}: no seed images found; point --datasets at the shared datasets folder.")
    for name in BUNDLED_DICOM + BROKEN_DICOM:
        path = pathlib.Path(pydicom.data.get_testdata_file(name))
        seeds.append((f"pydicom/{name}", path.read_bytes(), ".dcm"))
    mammogram = next((data for name, data, _ in seeds if name.startswith("mammography/")), None)
    if mammogram is not None:
        seeds.append(("generated/mammogram16_m1.dcm", dicom_from_png(mammogram), ".dcm"))
    return seeds


def dicom_from_png(data, bits_stored=16, photometric="MONOCHROME1"):
    """DICOM bytes holding an 8-bit image scaled to `bits_stored` bits (inverted for MONOCHROME1)."""
    import imageio.v3 as iio

    from pipelines import dicom

    pixels = np.asarray(iio.imread(data)).astype(np.float64)
    pixels = pixels if pixels.ndim == 2 else pixels[..., 0]
    stored = np.round(pixels / 255.0 * (2**bits_stored - 1))
    if photometric == "MONOCHROME1":
        stored = 2**bits_stored - 1 - stored
    buffer = io.BytesIO()
    dicom.dataset_from_array(stored.astype(np.uint16), bits_stored, photometric).save_as(
        buffer, enforce_file_format=True)
    return buffer.getvalue()


# ---------------------------------------------------------------- mutations


def bit_flips(data, rng):
    data = bytearray(data)
    for position in rng.integers(0, len(data), size=int(rng.integers(1, 64))):
        data[position] ^= 1 << int(rng.integers(0, 8))
    return bytes(data)


def truncation(data, rng):
    return data[: int(len(data) * rng.uniform(0.0, 0.98))]


def header_corruption(data, rng):
    data = bytearray(data)
    end = min(len(data), 512)
    for position in rng.integers(0, end, size=int(rng.integers(1, 16))):
        data[position] = int(rng.integers(0, 256))
    return bytes(data)


def chunk_corruption(data, rng):
    """Random bytes over one block in the body (a PNG chunk, JPEG scan, GIF frame or DICOM element)."""
    data = bytearray(data)
    length = int(rng.integers(8, 512))
    start = int(rng.integers(min(64, len(data) - 1), max(65, len(data) - length)))
    data[start:start + length] = rng.integers(0, 256, size=len(data[start:start + length]), dtype=np.uint8).tobytes()
    return bytes(data)


def huge_dimensions(data, rng, extension):
    """The declared width and height set to huge values, the rest intact."""
    side = int(rng.choice([65_535, 1 << 20, 0x7FFF_FFFF]))
    data = bytearray(data)
    if data.startswith(b"\x89PNG") and len(data) > 33:
        data[16:24] = struct.pack(">II", side, side)
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFF_FFFF)
    elif data.startswith(b"\xff\xd8"):
        for marker in (b"\xff\xc0", b"\xff\xc1", b"\xff\xc2"):
            position = data.find(marker)
            if position > 0:
                data[position + 5:position + 9] = struct.pack(">HH", 65_500, 65_500)
                break
    elif data.startswith(b"GIF"):
        data[6:10] = struct.pack("<HH", 65_535, 65_535)
    elif extension == ".dcm":
        return _dicom_with(bytes(data), Rows=65_535, Columns=65_535)
    elif extension == ".gz":
        raw = bytearray(gzip.decompress(bytes(data)))
        raw[4:8] = struct.pack(">I", 0x7FFF_FFFF)
        return gzip.compress(bytes(raw))
    return bytes(data)


def _dicom_with(data, **attributes):
    import pydicom

    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        for keyword, value in attributes.items():
            setattr(dataset, keyword, value)
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=False)
        return buffer.getvalue()
    except Exception:
        return data


def variant(data, rng, extension):
    """A valid but unusual encoding of the same picture: palette, alpha, 16-bit, CMYK, 1-bit, progressive, ..."""
    from PIL import Image

    if extension == ".dcm":
        bits = int(rng.choice([8, 12, 16]))
        choice = int(rng.integers(0, 3))
        attributes = [{"BitsStored": bits}, {"PhotometricInterpretation": "RGB"}, {"BitsStored": 20}][choice]
        return _dicom_with(data, **attributes), extension
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            image = image.convert("RGB")
    except Exception:
        return data, extension
    kind = str(rng.choice(["palette", "rgba", "la", "16bit", "cmyk", "1bit", "progressive", "animated", "grayjpeg"]))
    buffer = io.BytesIO()
    if kind == "palette":
        image.convert("P", palette=Image.Palette.ADAPTIVE).save(buffer, "PNG")
    elif kind == "rgba":
        image.convert("RGBA").save(buffer, "PNG")
    elif kind == "la":
        image.convert("LA").save(buffer, "PNG")
    elif kind == "16bit":
        Image.fromarray((np.asarray(image.convert("L"), np.uint16) * 257)).save(buffer, "PNG")
    elif kind == "cmyk":
        image.convert("CMYK").save(buffer, "JPEG")
        return buffer.getvalue(), ".jpg"
    elif kind == "1bit":
        image.convert("1").save(buffer, "PNG")
    elif kind == "progressive":
        image.save(buffer, "JPEG", progressive=True, quality=80)
        return buffer.getvalue(), ".jpg"
    elif kind == "animated":
        frames = [image.convert("P"), image.rotate(90).convert("P")]
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
        return buffer.getvalue(), ".gif"
    else:
        image.convert("L").save(buffer, "JPEG")
        return buffer.getvalue(), ".jpg"
    return buffer.getvalue(), ".png"


WRONG_EXTENSIONS = {".png": ".jpg", ".jpg": ".gif", ".jpeg": ".png", ".gif": ".png", ".dcm": ".png", ".gz": ".png"}
MUTATIONS = ("original", "bit_flips", "truncation", "header_corruption", "chunk_corruption", "huge_dimensions",
             "wrong_extension", "zero_bytes", "variant", "dicom_extension")


def mutate(seed, mutation, rng):
    """(case name, bytes, extension) of `mutation` applied to a seed (name, bytes, extension)."""
    name, data, extension = seed
    if mutation == "bit_flips":
        data = bit_flips(data, rng)
    elif mutation == "truncation":
        data = truncation(data, rng)
    elif mutation == "header_corruption":
        data = header_corruption(data, rng)
    elif mutation == "chunk_corruption":
        data = chunk_corruption(data, rng)
    elif mutation == "huge_dimensions":
        data = huge_dimensions(data, rng, extension)
    elif mutation == "wrong_extension":
        extension = WRONG_EXTENSIONS.get(extension, ".png")
    elif mutation == "zero_bytes":
        data = b""
    elif mutation == "variant":
        data, extension = variant(data, rng, extension)
    elif mutation == "dicom_extension":
        extension = ".dcm"
    return f"{name}:{mutation}", data, extension


def cases(seeds, count, seed=0):
    """`count` cases, each one seeded mutation (or, one in ten, none) of a random seed file.

    The cases of a smaller `count` with the same `seed` are the first of a larger one.
    """
    rng = np.random.default_rng(seed)
    result = []
    while len(result) < count:
        seed_file = seeds[int(rng.integers(0, len(seeds)))]
        result.append(mutate(seed_file, str(rng.choice(MUTATIONS)), rng))
    return result
