"""Installing and managing model weights: packs, downloads, licences and the state of each role.

No Qt here: the model manager dialog and ``python main.py models ...`` call the same functions.
"""
