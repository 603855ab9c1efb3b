r"""Launch the DiffusionDrive planner node, optionally with RViz.

    ros2 launch diffusiondrive_ros diffusiondrive.launch.py
    ros2 launch diffusiondrive_ros diffusiondrive.launch.py camera_transport:=compressed \
        rviz:=true pointcloud_topic:=/sensing/lidar/points namespace:=planner_a

The node's topics are private (``~/input/*``, ``~/output/*``) and remapped here to the topics
named by the ``*_topic`` arguments. With ``camera_transport:=compressed`` the node takes
``sensor_msgs/CompressedImage`` and the camera topics get image_transport's ``/compressed`` suffix
(``/camera/front/image_raw`` -> ``/camera/front/image_raw/compressed``).

Raw 1920x1080 images over best-effort QoS need the Fast DDS profile in
``config/fastdds_large_data.xml`` (see the comment at its top).

Where ``launch`` is not installed (ROS 2 from PyPI) the same node starts with

    diffusiondrive-ros node --ros-args --params-file config/diffusiondrive.yaml \
        -r ~/input/pointcloud:=/lidar/points ...
"""
import os
import tempfile

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

PACKAGE = 'diffusiondrive_ros'
NODE_NAME = 'diffusiondrive_planner'

# (node-private topic, launch argument, default topic). Camera topics name the raw image topic;
# the '/compressed' suffix is added for camera_transport:=compressed.
CAMERA_REMAPPINGS = (
    ('~/input/camera_left', 'camera_left_topic', '/camera/left/image_raw'),
    ('~/input/camera_front', 'camera_front_topic', '/camera/front/image_raw'),
    ('~/input/camera_right', 'camera_right_topic', '/camera/right/image_raw'),
)
OTHER_REMAPPINGS = (
    ('~/input/pointcloud', 'pointcloud_topic', '/lidar/points'),
    ('~/input/odometry', 'odometry_topic', '/odometry'),
    ('~/input/imu', 'imu_topic', '/imu'),
    ('~/input/command', 'command_topic', '/command'),
    ('~/output/path', 'path_topic', '/diffusiondrive/path'),
    ('~/output/candidates', 'candidates_topic', '/diffusiondrive/candidates'),
)
COMPRESSED_SUFFIX = '/compressed'


def _namespaced_params_file(params_file, namespace):
    """Return a params file whose node-name keys match the node inside ``namespace``.

    A key such as ``diffusiondrive_planner`` only matches a node without namespace, so for a
    namespaced node such keys are rewritten to ``/<namespace>/diffusiondrive_planner`` in a
    temporary copy. Absolute and wildcard keys (starting with '/') are kept as they are.
    """
    if not namespace:
        return params_file
    with open(params_file, encoding='utf-8') as stream:
        params = yaml.safe_load(stream) or {}
    rewritten = {
        key if str(key).startswith('/') else f'/{namespace}/{key}': value
        for key, value in params.items()
    }
    with tempfile.NamedTemporaryFile(
        'w', encoding='utf-8', prefix=f'{NODE_NAME}_', suffix='.yaml', delete=False
    ) as stream:
        yaml.safe_dump(rewritten, stream)
    return stream.name


def _camera_topic(topic, compressed):
    """Camera topic for the transport; image_transport's compressed one is <topic>/compressed."""
    if compressed and not topic.endswith(COMPRESSED_SUFFIX):
        return topic + COMPRESSED_SUFFIX
    return topic


def _planner_node(context):
    """Create the planner node once the launch arguments are known."""
    namespace = LaunchConfiguration('namespace').perform(context).strip('/')
    camera_transport = LaunchConfiguration('camera_transport').perform(context)
    params_file = LaunchConfiguration('params_file').perform(context)
    compressed = camera_transport == 'compressed'

    remappings = [
        (private, _camera_topic(LaunchConfiguration(argument).perform(context), compressed))
        for private, argument, _ in CAMERA_REMAPPINGS
    ]
    remappings += [
        (private, LaunchConfiguration(argument).perform(context))
        for private, argument, _ in OTHER_REMAPPINGS
    ]
    return [
        Node(
            package=PACKAGE,
            executable='diffusiondrive_node',
            name=NODE_NAME,
            namespace=namespace,
            parameters=[
                _namespaced_params_file(params_file, namespace),
                {
                    'use_sim_time': ParameterValue(
                        LaunchConfiguration('use_sim_time'), value_type=bool
                    ),
                    'camera_transport': camera_transport,
                },
            ],
            remappings=remappings,
            output='screen',
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    share = get_package_share_directory(PACKAGE)

    arguments = [
        DeclareLaunchArgument(
            'params_file',
            default_value=os.path.join(share, 'config', 'diffusiondrive.yaml'),
            description='Parameters file of the planner node',
        ),
        DeclareLaunchArgument(
            'use_sim_time',
            default_value='false',
            description='Use the /clock topic (rosbag replay, simulation) instead of system time',
        ),
        DeclareLaunchArgument(
            'namespace',
            default_value='',
            description='Namespace of the planner node (run several planners side by side)',
        ),
        DeclareLaunchArgument(
            'rviz',
            default_value='false',
            description='Also start RViz with rviz/diffusiondrive.rviz',
        ),
        DeclareLaunchArgument(
            'camera_transport',
            default_value='raw',
            choices=['raw', 'compressed'],
            description='raw: sensor_msgs/Image; '
            'compressed: sensor_msgs/CompressedImage on <camera topic>/compressed',
        ),
    ]
    arguments += [
        DeclareLaunchArgument(
            argument, default_value=default, description=f'Topic remapped to {private}'
        )
        for private, argument, default in CAMERA_REMAPPINGS + OTHER_REMAPPINGS
    ]

    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='rviz2',
        arguments=['-d', os.path.join(share, 'rviz', 'diffusiondrive.rviz')],
        parameters=[
            {'use_sim_time': ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)}
        ],
        condition=IfCondition(LaunchConfiguration('rviz')),
        output='screen',
    )

    return LaunchDescription(arguments + [OpaqueFunction(function=_planner_node), rviz])
