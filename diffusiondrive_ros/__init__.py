"""diffusiondrive_ros: the DiffusionDrive end-to-end planner as a ROS 2 node.

`from diffusiondrive_ros import Planner` needs no ROS installation.
"""
__all__ = ["Planner", "PlanResult"]


def __getattr__(name):
    # Lazy so that ROS-only tools (conversions, launch tests) don't pay for importing torch.
    if name in __all__:
        from . import planner

        return getattr(planner, name)
    raise AttributeError(name)
