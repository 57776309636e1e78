"""The diffusion engine (DESIGN.md §2): Identity, Shading and Harmonization Nets on Stable Diffusion 1.5.

Importing this package does not import torch; each module imports what it needs.
"""
