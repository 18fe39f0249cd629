"""ament_python package: builds with colcon in a ROS 2 workspace and installs with pip in a venv."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "psfusion_ros"

setup(
    name=PACKAGE,
    version="0.2.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
    ],
    python_requires=">=3.10",
    install_requires=[
        "numpy",
        "opencv-python-headless",
        "pillow",
        "pyyaml",
        "tqdm",
        "matplotlib",
        "rosbags",
        "torch>=2.3",
    ],
    extras_require={
        # In a ROS 2 workspace these come from the ROS installation; in a plain venv from PyPI wheels.
        "ros": [
            "ros-rclpy",
            "ros-sensor-msgs",
            "ros-std-msgs",
            "ros-diagnostic-msgs",
            "ros-lifecycle-msgs",
            "ros-rmw-fastrtps-cpp",
        ],
        # GPU machines (README: Deployment): pick the torch-tensorrt that matches the installed torch
        "tensorrt": ["torch-tensorrt"],
        # ONNX export and its check in ONNX Runtime
        "onnx": ["onnx", "onnxscript", "onnxruntime"],
        "test": ["pytest", "ruff", "hypothesis"],
    },
    zip_safe=True,
    maintainer="psfusion_ros developers",
    maintainer_email="psfusion-ros@example.com",
    description="PSFusion infrared/visible image fusion and semantic segmentation for ROS 2",
    license="MIT",
    entry_points={
        "console_scripts": [
            "psfusion-fuse = psfusion_ros.tools.launcher:fuse",
            "psfusion-demo = psfusion_ros.tools.demo:main",
            "psfusion-calibrate = psfusion_ros.tools.calibrate:main",
            "psfusion-bench = psfusion_ros.tools.bench:main",
            "psfusion-bag = psfusion_ros.tools.launcher:make_bag",
            "psfusion-eval = psfusion_ros.tools.launcher:evaluate",
            "psfusion-export = psfusion_ros.tools.export:main",
            "psfusion-train = psfusion_ros.tools.launcher:train",
            "psfusion_node = psfusion_ros.ros.entry:main",
            "psfusion_lifecycle_node = psfusion_ros.ros.entry:lifecycle_main",
        ],
    },
)
