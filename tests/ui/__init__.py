"""Browser tests (marker ``ui``); a package so its conftest does not shadow ``tests/conftest.py``."""
