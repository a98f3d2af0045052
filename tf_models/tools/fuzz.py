"""Feed hostile files (`tf_models.tools.mutations`) to every loader and count what happens.

Each (file, loader) job runs in a worker process under a time limit; a job
past the limit is a hang (the worker is killed and replaced), a worker that
dies is a crash. Outcomes:

- decoded: the loader accepted the file (a valid variant, or damage a decoder tolerates);
- skipped: the loader left the file out and counted it (Kermany's unreadable files);
- named error: a `ValueError` whose message names the file;
- unnamed error: a `ValueError` that does not name it;
- crash: any other exception (must be 0); hang: past the time limit (must be 0).
"""

import collections
import json
import logging
import multiprocessing
import os
import pathlib
import platform
import resource
import shutil
import tempfile
import threading
import time

import numpy as np

from tf_models.tools import mutations

IMAGE_LOADERS = ("read_image", "decode_grayscale", "class_folders", "kermany", "carvana", "paired_degrade",
                 "app_upload")
OUTCOMES = ("decoded", "skipped", "named_error", "unnamed_error", "crash", "hang")


def loaders_for(extension):
    """The loaders a file with `extension` is given to."""
    if extension == ".gz":
        return ("idx", "app_upload")
    if extension == ".dcm":
        return ("dicom",) + IMAGE_LOADERS
    return IMAGE_LOADERS


# ---------------------------------------------------------------- loaders (run in the worker)


def _write_png(path, size=(24, 24), channels=1, value=None):
    import imageio.v3 as iio

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(0).integers(0, 256, size + ((channels,) if channels > 1 else ()), np.uint8)
    iio.imwrite(path, pixels if value is None else np.full_like(pixels, value))
    return path


def _place(folder, case_file):
    folder.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(shutil.copy(case_file, folder / case_file.name))


def _header_size(path):
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            return (height, width) if 8 <= min(width, height) and width * height <= 4_000_000 else (24, 24)
    except Exception:
        return 24, 24


def load_read_image(case_file, work):
    from pipelines import images

    images.check_image_file(case_file)
    images.read_image(case_file)


def load_decode_grayscale(case_file, work):
    from pipelines import paired

    paired.decode_grayscale(str(case_file))


def load_class_folders(case_file, work):
    from pipelines import sources

    _place(work / "classes" / "a", case_file)
    _write_png(work / "classes" / "a" / "good.png")
    _write_png(work / "classes" / "b" / "good.png")
    split = sources.load(str(work / "classes"))
    sources.resized_cache(split, 16, split.channels)


def load_kermany(case_file, work):
    from pipelines import classification

    root = work / "xray"
    placed = _place(root / "train" / "NORMAL", case_file)
    _write_png(root / "train" / "NORMAL" / "IM-0001-0001.png")
    _write_png(root / "train" / "PNEUMONIA" / "person1_bacteria_1.png")
    paths, labels, skipped = classification.list_pneumonia_split(root, "train")
    classification.grayscale_dataset(paths, labels, 16)
    return "skipped" if str(placed) in {path for path, _ in skipped} else "decoded"


def load_carvana(case_file, work):
    from pipelines import segmentation

    root = work / "cars"
    size = _header_size(case_file)
    for car in ("car1", "car2", "car3"):
        _write_png(root / "train" / f"{car}_01.png", (16, 16), channels=3)
        _write_png(root / "train_masks" / f"{car}_01_mask.png", (16, 16), value=255)
    car = f"{case_file.stem}_01"
    if case_file.suffix.lower() == ".gif":
        shutil.copy(case_file, root / "train_masks" / f"{car}_mask{case_file.suffix}")
        _write_png(root / "train" / f"{car}.png", size, channels=3)
    else:
        shutil.copy(case_file, root / "train" / f"{car}{case_file.suffix}")
        _write_png(root / "train_masks" / f"{car}_mask.png", size, value=255)
    segmentation.build_segmentation_data(root, image_size=(16, 16), batch_size=1, augmentation=None)


def load_paired_degrade(case_file, work):
    from pipelines import paired

    _place(work / "clean", case_file)
    _write_png(work / "clean" / "good.png", (32, 32))
    files = paired.list_paired_files(work / "clean", "noise:0.05")
    paired.load_grayscale_dataset(files.targets)


def load_dicom(case_file, work):
    from pipelines import dicom

    dicom.read_dicom(case_file)


def load_idx(case_file, work):
    import gzip

    from pipelines import sources

    root = work / "idx"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(case_file, root / "train-labels-idx1-ubyte.gz")
    try:
        count = int.from_bytes(gzip.decompress(case_file.read_bytes())[4:8], "big")
    except Exception:
        count = 10
    count = min(count, 10_000)
    header = (2051).to_bytes(4, "big") + count.to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(count * 784)))
    split = sources.load(str(root))
    sources.resized_cache(split, 16, 1)


def load_app_upload(case_file, work):
    from tf_models.app import backend

    backend.read_upload(case_file.read_bytes(), case_file.name, 1)


LOADERS = {name[len("load_"):]: function for name, function in globals().items() if name.startswith("load_")}
PLACED_NAMES = {"idx": ("train-labels-idx1-ubyte",)}


def run_job(loader, case_file, work):
    """(outcome, message) of one loader on one file."""
    try:
        result = LOADERS[loader](case_file, work)
    except ValueError as error:
        message = str(error)
        names = (case_file.name, case_file.stem) + PLACED_NAMES.get(loader, ())
        return ("named_error" if any(name in message for name in names) else "unnamed_error"), message
    except Exception as error:  # anything else is what the fuzzer is looking for
        return "crash", f"{type(error).__name__}: {error}"[:2000]
    return result or "decoded", ""


def _serve(connection, scratch):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.disable(logging.WARNING)
    import warnings

    warnings.simplefilter("ignore")
    while True:
        job = connection.recv()
        if job is None:
            return
        loader, name, data, extension, index = job
        work = pathlib.Path(tempfile.mkdtemp(dir=scratch))
        case_file = work / f"case{index:05d}{extension}"
        case_file.write_bytes(data)
        outcome, message = run_job(loader, case_file, work / "layout")
        shutil.rmtree(work, ignore_errors=True)
        connection.send((outcome, message, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


# ---------------------------------------------------------------- the parent


class Worker:
    """A worker process that runs jobs; restarted after a hang or a death."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.process = None
        self.peak_kib = 0
        self.deaths_between_jobs = []

    def start(self):
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, self.scratch), daemon=True)
        self.process.start()

    def run(self, job, timeout):
        if self.process is None or not self.process.is_alive():
            self.start()
        try:
            self.connection.send(job)
        except ConnectionError:
            self.deaths_between_jobs.append(self.exit_code())
            self.stop(kill=True)
            self.start()
            self.connection.send(job)
        if not self.connection.poll(timeout):
            self.stop(kill=True)
            return "hang", f"no answer within {timeout:.0f} s"
        try:
            outcome, message, peak = self.connection.recv()
        except (EOFError, ConnectionError):
            code = self.exit_code()
            self.stop(kill=True)
            return "crash", f"the worker died (exit code {code})"
        self.peak_kib = max(self.peak_kib, peak)
        return outcome, message

    def exit_code(self):
        """The exit code of a worker that has died (negative: the signal), None if it still runs."""
        self.process.join(5)
        return self.process.exitcode

    def stop(self, kill=False):
        if self.process is None:
            return
        if kill or not self.process.is_alive():
            self.process.kill()
        else:
            try:
                self.connection.send(None)
            except ConnectionError:
                self.process.kill()
        self.process.join(10)
        self.process = None


def fuzz(datasets_root, count=200, seed=0, timeout=60.0, workers=1, progress=None):
    """Runs `count` cases through every loader in `workers` processes; returns the report (see `format_table`).

    `progress(done, total, report)` is called after each file with the report so far.
    """
    seeds = mutations.seed_files(datasets_root)
    chosen = mutations.cases(seeds, count, seed)
    table = collections.defaultdict(collections.Counter)
    seconds = collections.Counter()
    findings = collections.defaultdict(list)
    lock = threading.Lock()
    start = time.monotonic()
    pending = iter(enumerate(chosen))
    done = [0]

    def report():
        totals = collections.Counter()
        for counts in table.values():
            totals.update(counts)
        return {
            "files": done[0], "seed": seed, "seed_files": len(seeds), "timeout_s": timeout, "workers": workers,
            "mutations": dict(collections.Counter(name.rsplit(":", 1)[1] for name, _, _ in chosen[:done[0]])),
            "loaders": {loader: {o: table[loader][o] for o in OUTCOMES} for loader in sorted(table)},
            "loader_seconds": {loader: round(seconds[loader], 1) for loader in sorted(seconds)},
            "totals": {outcome: totals[outcome] for outcome in OUTCOMES},
            "findings": {key: value[:50] for key, value in findings.items()},
            "peak_worker_memory_mib": round(max(worker.peak_kib for worker in pool) / 1024.0, 1),
            "worker_deaths_between_jobs": [code for worker in pool for code in worker.deaths_between_jobs],
            "seconds": round(time.monotonic() - start, 1),
            "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        }

    def serve(worker):
        worker.start()
        first = True
        while True:
            with lock:
                index, case = next(pending, (None, None))
            if case is None:
                return
            name, data, extension = case
            for loader in loaders_for(extension):
                job_start = time.monotonic()
                outcome, message = worker.run((loader, name, data, extension, index), timeout + 60.0 * first)
                first = False
                with lock:
                    seconds[loader] += time.monotonic() - job_start
                    table[loader][outcome] += 1
                    if outcome in ("crash", "hang", "unnamed_error"):
                        findings[outcome].append({"case": name, "loader": loader, "message": message})
            with lock:
                done[0] += 1
                if progress:
                    progress(done[0], len(chosen), report())

    with tempfile.TemporaryDirectory(prefix="fuzz_") as scratch:
        pool = [Worker(scratch) for _ in range(workers)]
        threads = [threading.Thread(target=serve, args=(worker,)) for worker in pool]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for worker in pool:
                worker.stop()
    return report()


def format_table(report):
    """A Markdown table of the report: one row per loader and the totals."""
    header = "| loader | runs | " + " | ".join(OUTCOMES) + " |"
    lines = [header, "|" + "---|" * (len(OUTCOMES) + 2)]
    rows = list(report["loaders"].items()) + [("**total**", report["totals"])]
    for loader, counts in rows:
        lines.append(f"| {loader} | {sum(counts.values())} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    lines.append("")
    lines.append(f"{report['files']} files (seed {report['seed']}, from {report['seed_files']} real seed files), "
                 f"{report['seconds']:.0f} s, peak worker memory {report['peak_worker_memory_mib']:.0f} MiB, "
                 f"{report['cpu']}.")
    deaths = report.get("worker_deaths_between_jobs")
    if deaths:
        lines.append(f"Workers that died between two files and were restarted: {len(deaths)} (exit codes {deaths}).")
    return "\n".join(lines)


def write_report(report, path):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
