"""Launch psfusion_node with config/psfusion.yaml; launch arguments override topics and common settings.

    ros2 launch psfusion_ros psfusion.launch.py checkpoint:=/models/best_model.pth \
        thermal_topic:=/flir/image_raw rgb_topic:=/camera/color/image_raw calibration:=/cfg/rig.yaml

Empty arguments leave the parameter file's value in place.
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

ARGUMENTS = {
    # name: (default, description)
    "thermal_topic": ("thermal/image_raw", "thermal image topic"),
    "rgb_topic": ("rgb/image_raw", "RGB image topic"),
    "thermal_info_topic": ("thermal/camera_info", "thermal camera_info topic"),
    "rgb_info_topic": ("rgb/camera_info", "RGB camera_info topic"),
    "namespace": ("", "namespace of the node and its outputs (one node per camera pair)"),
    "params_file": ("", "parameter file (default: the package's config/psfusion.yaml)"),
    "checkpoint": ("", "PSFusion weights (best_model.pth)"),
    "calibration": ("", "thermal→RGB registration YAML from psfusion-calibrate"),
    "device": ("", "auto | cpu | cuda"),
    "backend": ("", "inference backend"),
}
# launch argument → node parameter it overrides when non-empty
OVERRIDES = {
    "checkpoint": "checkpoint",
    "calibration": "registration.calibration_file",
    "device": "device",
    "backend": "backend",
}


def _node(context, *_):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = value["params_file"] or (
        FindPackageShare("psfusion_ros").perform(context) + "/config/psfusion.yaml"
    )
    overrides = {param: value[arg] for arg, param in OVERRIDES.items() if value[arg]}
    return [
        Node(
            package="psfusion_ros",
            executable="psfusion_node",
            name="psfusion",
            namespace=value["namespace"],
            parameters=[params_file, overrides],
            remappings=[
                ("thermal/image_raw", value["thermal_topic"]),
                ("rgb/image_raw", value["rgb_topic"]),
                ("thermal/camera_info", value["thermal_info_topic"]),
                ("rgb/camera_info", value["rgb_info_topic"]),
            ],
            output="screen",
            emulate_tty=True,
        )
    ]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_node)]
    )
