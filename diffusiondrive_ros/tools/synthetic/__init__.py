"""Deterministic synthetic drive generator, one concern per module.

Modules import only from earlier ones: interface, config, geometry, motion, layout, world, lidar,
camera, raster, scene, messages, bag. ``tools.synthetic_drive`` re-exports the public API and is the CLI.
"""
