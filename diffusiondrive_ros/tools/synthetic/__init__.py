"""Deterministic synthetic drive generator, one concern per module.

Modules import only from earlier ones: interface, config, geometry, path, motion, speed, layout, network,
route, world, scenery, lidar, camera, raster, scenario, scene, messages, bag. ``scenario`` holds the demo
drive and the random one drawn from a seed. ``tools.synthetic_drive`` is the CLI.
"""
