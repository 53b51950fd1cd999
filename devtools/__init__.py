"""Developer-only tools, run from the checkout (`python -m devtools.<name>`) and never
installed: the wheel holds `src/dsbench` only, and no module of it imports these.

    mlflow_ui        `mlflow ui` on a free port, and the Selenium/headless-Chromium driver
                     that checks it and takes its screenshots (make screenshots)
    postgres         a throwaway PostgreSQL cluster on 127.0.0.1 (tests, bench-analysis)
    analysis_scale   the analysis timed on 1k to 10k generated runs (make bench-analysis)
"""
