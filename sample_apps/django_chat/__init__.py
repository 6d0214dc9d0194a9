"""Django chat sample: ``python -m sample_apps.django_chat`` (see views.py)."""
