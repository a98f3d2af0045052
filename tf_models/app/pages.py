"""The Streamlit app's pages, one function a task (named by its registry entry's `AppPage.render`).

Each page lists the runs under saved_models/<task>/ that have an exported
model, loads the chosen one once per server (st.cache_resource) and offers
its result as a download. Uploads are checked before decoding (size, pixel
count) and converted to the channels the model expects, with a note.
"""

import streamlit as st

from tf_models.app import backend as app_backend
from tf_models.app import models as app_models

DEGRADATIONS = {
    "none (enhance the image as it is)": "",
    "Gaussian noise (noise:0.05)": "noise:0.05",
    "low dose (poisson:200)": "poisson:200",
    "blur (blur:1.5)": "blur:1.5",
    "downsampling (down:2)": "down:2",
    "JPEG (jpeg:30)": "jpeg:30",
}
NOT_A_DIAGNOSIS = (
    "This is a research demo, not a diagnosis. The model was trained on one public data set, makes "
    "mistakes, and has not been validated for clinical use; a radiologist reads chest X-rays."
)


@st.cache_resource(show_spinner="Loading the model...", max_entries=8)
def load_cached(loader_name, artifact, modified):
    """`modified` (the artifact's mtime) is part of the cache key, so a retrained run is reloaded."""
    return getattr(app_models, loader_name)(artifact)


def pick_run(task, loader_name):
    """A run selector; the loaded model, or None (with the command that trains one) when there is none."""
    runs = app_backend.list_runs(task)
    if not runs:
        st.warning(app_backend.missing_run_message(task))
        return None
    name = st.selectbox("Trained run", list(runs), key=f"{task}_run")
    artifact = runs[name]
    try:
        return load_cached(loader_name, str(artifact), artifact.stat().st_mtime)
    except Exception as error:  # noqa: BLE001 - any load failure is shown, never a traceback
        st.error(f"Could not load {artifact}: {error}")
        return None


def pick_image(task, channels):
    """An uploaded or sample image as `app_backend.UploadedImage`, or None (with a message when refused)."""
    samples = app_backend.list_samples(task)
    sources = ["Upload", "Sample"] if samples else ["Upload"]
    source = st.radio("Image", sources, horizontal=True, key=f"{task}_source")
    if source == "Sample":
        path = st.selectbox("Sample", samples, format_func=lambda sample: sample.name, key=f"{task}_sample")
        name, data = path.name, path.read_bytes()
    else:
        upload = st.file_uploader("Upload an image", type=list(app_backend.UPLOAD_TYPES), key=f"{task}_upload")
        if upload is None:
            return None
        name, data = upload.name, upload.getvalue()
    try:
        image = app_backend.read_upload(data, name, channels)
    except ValueError as error:
        st.error(str(error))
        return None
    for note in image.notes:
        st.info(f"Note: {note}.")
    return image


EVERY_CLASS = "every class (one row each)"


def generate():
    st.header("Generate (DCGAN)")
    generator = pick_run("dcgan", "load_generator")
    if generator is None:
        return
    class_names = app_models.generator_class_names(app_backend.list_runs("dcgan")[st.session_state["dcgan_run"]])
    choice = st.selectbox("Class", [EVERY_CLASS, *class_names], key="class") if class_names else None
    if choice == EVERY_CLASS:
        every_class(generator, class_names)
        return
    class_id = class_names.index(choice) if choice else None
    count = st.number_input("Number of images", 1, app_models.MAX_IMAGES, 16, key="count")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    interpolate = st.checkbox("Interpolate to a second seed", key="interpolate")
    second_seed = st.number_input("Second seed", 0, 2**31 - 1, 1, key="second_seed") if interpolate else None
    images = app_models.run_generate(generator, int(count), int(seed), second_seed, class_id)
    grid = app_models.image_grid(images, columns=len(images) if interpolate else None)
    of_class = f" of class {choice}" if choice else ""
    st.image(grid, caption=f"{len(images)} images{of_class}, seed {seed}"
             + (f" to {second_seed}" if interpolate else ""))
    st.download_button("Download the grid (PNG)", app_backend.png_bytes(grid), "generated.png", "image/png")


def every_class(generator, class_names):
    """A grid with one row per class, the same latent vectors in every row."""
    count = st.number_input("Images per class", 1, app_models.MAX_IMAGES // len(class_names), 8, key="per_class")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
    images = app_models.run_every_class(generator, int(count), int(seed))
    grid = app_models.image_grid(images, columns=int(count))
    st.image(grid, caption=f"{int(count)} images of each class, one row per class: {', '.join(class_names)}")
    st.download_button("Download the grid (PNG)", app_backend.png_bytes(grid), "generated.png", "image/png")


def enhance():
    st.header("Enhance (Pix2Pix)")
    enhancer = pick_run("pix2pix", "load_enhancer")
    if enhancer is None:
        return
    image = pick_image("pix2pix", channels=1)
    label = st.selectbox("Degrade it first (to compare with the clean image)", list(DEGRADATIONS), key="degradation")
    if image is None:
        return
    result = app_models.run_enhance(enhancer, image.unit(), DEGRADATIONS[label])
    shown = [("Input", result["input"]), ("Enhanced", result["enhanced"])]
    if result["target"] is not None:
        shown.append(("Ground truth", result["target"]))
    for column, (caption, picture) in zip(st.columns(len(shown)), shown):
        column.image(picture, caption=caption, clamp=True)
    if result["scores"]:
        scores = result["scores"]
        first, second = st.columns(2)
        first.metric("PSNR (dB)", f"{scores['enhanced']['psnr']:.2f}",
                     f"{scores['enhanced']['psnr'] - scores['input']['psnr']:+.2f} vs input")
        second.metric("SSIM", f"{scores['enhanced']['ssim']:.3f}",
                      f"{scores['enhanced']['ssim'] - scores['input']['ssim']:+.3f} vs input")
    enhanced = app_models.to_bit_depth(result["enhanced"], image.maximum)
    st.download_button("Download the enhanced image (PNG)", app_backend.png_bytes(enhanced), "enhanced.png",
                       "image/png")


def segment():
    st.header("Segment (U-Net)")
    model = pick_run("unet", "load_segmenter")
    if model is None:
        return
    image = pick_image("unet", channels=model.input_shape[-1])
    if image is None:
        return
    _, mask, overlay = app_models.run_segment(model, image.as_uint8())
    for column, caption, picture in zip(st.columns(3), ("Image", "Mask", "Overlay"),
                                        (image.as_uint8(), mask, overlay)):
        column.image(picture, caption=caption)
    st.markdown(f"Foreground: {100 * (mask > 0).mean():.1f} % of the pixels.")
    st.download_button("Download the mask (PNG)", app_backend.png_bytes(mask), "mask.png", "image/png")


def classify():
    st.header("Classify (pneumonia)")
    classifier = pick_run("pneumonia", "load_classifier")
    if classifier is None:
        return
    image = pick_image("pneumonia", channels=1)
    if image is None:
        return
    result = app_models.run_classify(classifier, image.as_uint8())
    first, second = st.columns(2)
    first.metric("P(pneumonia)", f"{result['probability']:.3f}")
    second.metric("Label", result["label"])
    st.caption(f"Label at the run's threshold {result['threshold']:.3f} ({classifier.threshold['policy']}, chosen on "
               f"{classifier.threshold['chosen_on']}).")
    left, right = st.columns(2)
    left.image(result["resized"], caption="Input (as the model sees it)")
    right.image(result["overlay"], caption="Grad-CAM: where the evidence for pneumonia is")
    st.warning(NOT_A_DIAGNOSIS)
    st.download_button("Download the Grad-CAM overlay (PNG)", app_backend.png_bytes(result["overlay"]),
                       "grad_cam.png", "image/png")
