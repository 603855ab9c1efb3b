"""ament_python package that also installs with pip (see README)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "diffusiondrive_ros"

ROS_WHEELS = [
    "ros-rclpy[fastrtps]==9.1.2",
    "ros-rcl-interfaces==2.3.0",
    "ros-std-msgs==5.5.1",
    "ros-sensor-msgs==5.5.1",
    "ros-nav-msgs==5.5.1",
    "ros-geometry-msgs==5.5.1",
    "ros-visualization-msgs==5.5.1",
    "ros-diagnostic-msgs==5.5.1",
    "ros-rosgraph-msgs==2.3.0",
    "ros-builtin-interfaces==2.3.0",
]
TOOLS = [
    "rosbags==0.11.9",
    "apsw",  # also required by rosbags; imported directly to read torn sqlite3 bags
    "mcap==1.6.0",
    "mcap-ros2-support==0.6.0",
    "transforms3d==0.4.2",
    "imageio-ffmpeg",
    "tqdm",
    "tensorboard",  # optional: `train` writes TensorBoard events when it is installed
]
ONNX = ["onnx", "onnxscript", "onnxruntime"]  # `export --onnx` (torch's exporter needs onnxscript) and the ONNX backend

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    package_data={PACKAGE: ["config/*.yaml", "weights/*.pt"]},
    python_requires=">=3.10",
    install_requires=["numpy", "torch>=2.1", "opencv-python-headless", "pyyaml", "setuptools"],
    extras_require={
        "ros": ROS_WHEELS,
        "tools": TOOLS,
        "onnx": ONNX,
        "dev": ROS_WHEELS + TOOLS + ONNX + [
            "pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "ruff==0.17.6",
            "colcon-common-extensions==0.3.0",
        ],
    },
    tests_require=["pytest"],
    zip_safe=True,
    maintainer="diffusiondrive_ros maintainers",
    maintainer_email="maintainers@diffusiondrive-ros.org",
    description="ROS 2 node running the DiffusionDrive end-to-end planner.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "diffusiondrive_node = diffusiondrive_ros.ros.node:main",
            "diffusiondrive-ros = diffusiondrive_ros.cli:main",
        ],
    },
)
