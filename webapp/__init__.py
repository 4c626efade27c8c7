"""The backend of the Gradio Space (app.py): which models to serve, one function per event,
uploads, output files, the session's history, health and metrics. It uses the `cifar_cnn`
library and never the training code; app.py holds only the UI.

- `serving`: the served models and the sources that failed to load.
- `events`: classify, ensemble vote, Grad-CAM, robustness, batch and model cards.
- `uploads`, `outputs`, `history`: files in and out, and the browser session's predictions.
- `monitoring`, `server`: Prometheus metrics, /healthz, and the FastAPI server around the app.
"""
