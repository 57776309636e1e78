"""Core: images, faces, masks, frequency maps and the pipeline stages. Never imports Qt."""
