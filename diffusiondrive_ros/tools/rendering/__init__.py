"""Pictures of the planner's candidate modes from bags; `diffusiondrive_ros.tools.render` is the entry point.

Modules, each depending only on those listed before it: geometry, frame, drawing, bev, camera_view,
picture, markers, odometry, bag_frames, video.
"""
