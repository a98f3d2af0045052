"""DICOM files (`.dcm`) as grayscale images, and enhanced copies written back as DICOM.

Values are mapped in the order the DICOM standard displays them:

1. the stored values of the first frame, with Bits Stored and Pixel
   Representation respected (a 12-bit file holds 0..4095);
2. the modality transform: Rescale Slope and Intercept (or a Modality LUT);
3. with `voi=True` and a VOI LUT Sequence or Window Center/Width present,
   the first VOI LUT or window; values outside the window are clipped;
4. normalisation to [0, 1] by the true range of the result: the window's
   output range when a VOI was applied, else the range that Bits Stored
   allows, passed through the modality transform (never the image's own
   minimum and maximum, so every file of a series maps alike);
5. MONOCHROME1 (white is 0) inverted, so 1 is always white.

Compressed transfer syntaxes decode through pydicom's pixel handlers:
RLE natively, JPEG, JPEG Lossless and JPEG-LS with `pylibjpeg-libjpeg`,
JPEG 2000 and HTJ2K with `pylibjpeg-openjpeg`. Any other syntax (JPEG XL,
video) is refused with a `ValueError` naming it.
"""

import dataclasses
import io
import logging
import pathlib

import numpy as np

logger = logging.getLogger(__name__)

DICOM_EXTENSIONS = (".dcm", ".dicom")
MAX_PIXELS = 100_000_000
DERIVATION_DESCRIPTION = "Enhanced by a Pix2Pix generator"
_GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg (or pyjpegls)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg (or pillow)",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg (or pillow)",
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",
}


@dataclasses.dataclass
class DicomImage:
    """A decoded DICOM image and how its values were mapped to [0, 1].

    `unit` is float32 [H, W, 1] in [0, 1] (1 = white); `low` and `high` are
    the values (after the modality transform, and the VOI when `windowed`)
    that map to 0 and 1 before a MONOCHROME1 inversion.
    """

    unit: np.ndarray
    dataset: object
    low: float
    high: float
    inverted: bool
    windowed: bool
    bits_stored: int

    def as_integers(self):
        """uint8 for files of up to 8 bits, else uint16 spanning 0..65535."""
        dtype = np.uint8 if self.bits_stored <= 8 else np.uint16
        return np.round(self.unit * np.iinfo(dtype).max).astype(dtype)


def is_dicom_path(path):
    return pathlib.Path(str(path)).suffix.lower() in DICOM_EXTENSIONS


def has_dicom_marker(head):
    """True when `head` (the first 132+ bytes of a file) carries the 'DICM' marker at byte 128."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def read_dataset(source, name=None):
    """The pydicom dataset of a path or of bytes; `ValueError` naming the file when it is not DICOM."""
    import pydicom

    name = name or str(source)
    file = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        return pydicom.dcmread(file)
    except pydicom.errors.InvalidDicomError:
        raise ValueError(
            f"{name}: not a DICOM file (no 'DICM' marker at byte 128); export it as a DICOM Part 10 file "
            "or save it as PNG."
        ) from None
    except Exception as error:
        raise ValueError(f"{name}: the DICOM file is damaged or truncated ({type(error).__name__}: {error}).") from None


def check_grayscale(dataset, name):
    """`ValueError` naming the file unless it holds a decodable one-channel image; returns (rows, columns)."""
    if not any(tag in dataset for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        kind = getattr(dataset.get("SOPClassUID"), "name", None) or dataset.get("Modality") or "object"
        raise ValueError(
            f"{name}: the DICOM file has no pixel data (it is a {kind}); give an image file of the series."
        )
    photometric = str(dataset.get("PhotometricInterpretation", "")).upper()
    samples = int(dataset.get("SamplesPerPixel", 1) or 1)
    if samples != 1 or photometric not in _GRAYSCALE:
        raise ValueError(
            f"{name}: the DICOM image is {photometric or 'colour'} with {samples} sample(s) per pixel where a "
            "grayscale (MONOCHROME1/MONOCHROME2) image is expected; convert it to grayscale first."
        )
    rows, columns = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
    if rows <= 0 or columns <= 0:
        raise ValueError(f"{name}: the DICOM header gives no image size (Rows {rows}, Columns {columns}).")
    if rows * columns > MAX_PIXELS:
        raise ValueError(
            f"{name}: {columns}x{rows} is over the {MAX_PIXELS / 1e6:.0f} megapixel limit; downscale it first."
        )
    _check_transfer_syntax(dataset, name)
    return rows, columns


def _check_transfer_syntax(dataset, name):
    from pydicom import pixels

    syntax = getattr(dataset, "file_meta", {}).get("TransferSyntaxUID")
    if syntax is None:
        return
    try:
        decoder = pixels.get_decoder(syntax)
    except NotImplementedError:
        raise ValueError(
            f"{name}: transfer syntax {syntax.name} ({syntax}) has no pixel decoder in pydicom; convert the "
            "file to an uncompressed syntax (e.g. 'gdcmconv --raw' or dcmtk's 'dcmdjpeg')."
        ) from None
    if not decoder.is_available:
        package = _DECODER_PACKAGES.get(str(syntax), "a pydicom pixel data plugin")
        raise ValueError(
            f"{name}: transfer syntax {syntax.name} ({syntax}) needs {package}; install it with pip."
        )


def _stored_range(dataset):
    bits = int(dataset.get("BitsStored") or dataset.get("BitsAllocated") or 16)
    if int(dataset.get("PixelRepresentation", 0) or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1, bits
    return 0, 2**bits - 1, bits


def _modality_range(dataset, stored_low, stored_high):
    from pydicom import pixels

    ends = pixels.apply_modality_lut(np.array([stored_low, stored_high], np.int64), dataset)
    return float(np.min(ends)), float(np.max(ends))


def _window_range(dataset):
    """(low, high) of the output of the first VOI LUT or window, as pydicom computes it; None without one."""
    if "VOILUTSequence" in dataset:
        return 0.0, float(2 ** int(dataset.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    if "WindowWidth" not in dataset or "WindowCenter" not in dataset:
        return None
    if dataset.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(dataset.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    stored_low, stored_high, _ = _stored_range(dataset)
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    return stored_low * slope + intercept, stored_high * slope + intercept


def decode(dataset, name, voi=True):
    """A `DicomImage` of the first frame of `dataset` (see the module docstring for the mapping)."""
    from pydicom import pixels

    check_grayscale(dataset, name)
    try:
        stored = pixels.pixel_array(dataset, index=0 if int(dataset.get("NumberOfFrames", 1) or 1) > 1 else None)
        values = pixels.apply_modality_lut(stored, dataset).astype(np.float64)
    except Exception as error:
        raise ValueError(
            f"{name}: the DICOM pixel data cannot be decoded ({type(error).__name__}: {error})."
        ) from None
    if values.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D image, the pixel data has shape {values.shape}.")
    stored_low, stored_high, bits = _stored_range(dataset)
    low, high = _modality_range(dataset, stored_low, stored_high)
    window = _window_range(dataset) if voi else None
    if window is not None:
        try:
            lookup = np.round(values).astype(np.int64) if "VOILUTSequence" in dataset else values
            values = pixels.apply_voi_lut(lookup, dataset, index=0).astype(np.float64)
        except Exception as error:
            raise ValueError(f"{name}: the DICOM VOI LUT / window cannot be applied ({error}).") from None
        low, high = window
    unit = np.clip((values - low) / max(high - low, 1e-12), 0.0, 1.0)
    inverted = str(dataset.PhotometricInterpretation).upper() == "MONOCHROME1"
    if inverted:
        unit = 1.0 - unit
    return DicomImage(unit.astype(np.float32)[..., None], dataset, low, high, inverted, window is not None, bits)


def read_dicom(source, name=None, voi=True):
    """A `DicomImage` of a DICOM path or bytes; `ValueError` naming the file for anything unreadable."""
    name = name or str(source)
    return decode(read_dataset(source, name), name, voi=voi)


def header_size(source, name=None):
    """(width, height) of a grayscale DICOM from its header, checked, without decoding the pixels."""
    name = name or str(source)
    rows, columns = check_grayscale(read_dataset(source, name), name)
    return columns, rows


# ---------------------------------------------------------------- writing


def to_stored_values(image, unit):
    """Stored pixel values in the source's bit depth for `unit` [H, W(, 1)] in [0, 1], mapped like `image`."""
    if image.dataset.get("ModalityLUTSequence"):
        raise ValueError("A DICOM with a Modality LUT Sequence cannot be written back; save the enhanced image as PNG.")
    unit = np.asarray(unit, np.float64).reshape(np.asarray(unit).shape[:2])
    if image.inverted:
        unit = 1.0 - unit
    values = image.low + np.clip(unit, 0.0, 1.0) * (image.high - image.low)
    dataset = image.dataset
    if image.windowed:
        values = _invert_window(dataset, values)
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    stored = np.round((values - intercept) / slope)
    stored_low, stored_high, _ = _stored_range(dataset)
    return np.clip(stored, stored_low, stored_high)


def _invert_window(dataset, values):
    """Modality values that the first VOI LUT or window maps to `values` (a LUT by interpolation)."""
    if "VOILUTSequence" in dataset:
        item = dataset.VOILUTSequence[0]
        table = np.asarray(item.LUTData, np.float64)
        order = np.argsort(table, kind="stable")
        return float(item.LUTDescriptor[1]) + np.interp(values, table[order], order.astype(np.float64))
    center = float(np.atleast_1d(dataset.WindowCenter)[0])
    width = float(np.atleast_1d(dataset.WindowWidth)[0])
    low, high = _window_range(dataset)
    fraction = (values - low) / (high - low)
    function = str(dataset.get("VOILUTFunction", "LINEAR")).upper()
    if function == "SIGMOID":
        fraction = np.clip(fraction, 1e-6, 1 - 1e-6)
        return center - width / 4 * np.log(1 / fraction - 1)
    if function == "LINEAR":
        center, width = center - 0.5, width - 1
    return (fraction - 0.5) * width + center


def write_derived(image, unit, path, description):
    """Writes `unit` as a DICOM derived from `image`: same patient, study and series metadata,
    a new SOP Instance UID, Derivation Description `description`, uncompressed pixel data in the
    source's Bits Allocated / Bits Stored / Pixel Representation, Image Type DERIVED. Returns `path`."""
    import pydicom
    from pydicom import uid

    source = image.dataset
    derived = pydicom.Dataset()
    for element in source:
        if element.tag.group not in (0x7FE0,) and element.keyword not in ("NumberOfFrames",):
            derived.add(element)
    stored = to_stored_values(image, unit)
    allocated = int(source.get("BitsAllocated", 16))
    signed = int(source.get("PixelRepresentation", 0) or 0) == 1
    dtype = np.dtype(f"{'i' if signed else 'u'}{max(allocated, 8) // 8}")
    derived.file_meta = pydicom.dataset.FileMetaDataset(source.file_meta)
    derived.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    derived.SOPInstanceUID = uid.generate_uid()
    derived.file_meta.MediaStorageSOPInstanceUID = derived.SOPInstanceUID
    derived.DerivationDescription = description
    image_type = list(source.get("ImageType", ["ORIGINAL", "PRIMARY"]))
    derived.ImageType = ["DERIVED"] + image_type[1:]
    derived.Rows, derived.Columns = stored.shape
    derived.PixelData = stored.astype(dtype.newbyteorder("<")).tobytes()
    derived["PixelData"].VR = "OW" if allocated > 8 else "OB"
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    derived.save_as(temporary, enforce_file_format=True)
    temporary.replace(path)
    return path


def dataset_from_array(pixels, bits_stored=16, photometric="MONOCHROME2", signed=False, **attributes):
    """A Secondary Capture dataset holding a grayscale integer array [H, W] as stored values.

    `attributes` set further elements by keyword (e.g. `RescaleSlope=0.5`,
    `WindowCenter=2048`); patient and study elements are filled with
    placeholders and new UIDs, so the dataset names no one.
    """
    import pydicom
    from pydicom import uid

    pixels = np.asarray(pixels)
    allocated = 8 if bits_stored <= 8 else 16
    dtype = np.dtype(f"{'i' if signed else 'u'}{allocated // 8}").newbyteorder("<")
    dataset = pydicom.Dataset()
    dataset.file_meta = pydicom.dataset.FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    dataset.file_meta.MediaStorageSOPClassUID = uid.SecondaryCaptureImageStorage
    dataset.SOPClassUID = uid.SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()
    dataset.PatientName, dataset.PatientID, dataset.Modality = "Anonymous^Generated", "GENERATED-0", "OT"
    dataset.ImageType = ["ORIGINAL", "PRIMARY"]
    dataset.Rows, dataset.Columns = pixels.shape[:2]
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation = 1, photometric
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = allocated, bits_stored, bits_stored - 1
    dataset.PixelRepresentation = int(signed)
    dataset.PixelData = pixels.astype(dtype).tobytes()
    dataset["PixelData"].VR = "OW" if allocated > 8 else "OB"
    for keyword, value in attributes.items():
        setattr(dataset, keyword, value)
    return dataset
