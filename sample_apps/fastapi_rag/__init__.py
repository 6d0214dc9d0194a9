"""FastAPI RAG sample: ``python -m sample_apps.fastapi_rag`` (see app.py)."""
