"""The project store (SQLite + content-addressed files). Never imports Qt."""
