"""Use the trained models without writing code: generate, enhance, segment, classify.

    streamlit run scripts/app.py            (or: make app; from the repository root it listens on 127.0.0.1 only)
    streamlit run scripts/app.py --server.address 0.0.0.0    (serve other computers)
    TF_MODELS_ROOT=/path/to/saved_models streamlit run scripts/app.py

One page a registered task (`tf_models/registry.py`, drawn by
`tf_models/app/pages.py`). The app writes no files. `?page=Segment` in the
address opens a page directly.
"""

import streamlit as st

from tf_models import registry
from tf_models.app import backend as app_backend
from tf_models.core import devices


def main():
    st.set_page_config(page_title="tf-image-models", layout="wide")
    devices.initialize()
    pages = {spec.app.name: spec.app for spec in registry.specs() if spec.app is not None}
    requested = st.query_params.get("page", next(iter(pages)))
    names = list(pages)
    page = st.sidebar.radio("Page", names, index=names.index(requested) if requested in names else 0, key="page")
    st.sidebar.caption(f"Runs from {app_backend.models_root()}/")
    registry.resolve(pages[page].render)()


main()
