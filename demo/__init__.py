"""The demo Django project and its example migration, ``demo.tableau``."""
