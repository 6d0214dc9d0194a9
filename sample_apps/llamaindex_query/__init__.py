"""LlamaIndex query sample: ``python -m sample_apps.llamaindex_query`` (see app.py)."""
