"""The clinical knowledge: model.py (frozen types), files.py (the file schemas), load.py (the loader)."""
