"""Launch psfusion_node with config/psfusion.yaml; launch arguments override topics and common settings.

    ros2 launch psfusion_ros psfusion.launch.py checkpoint:=/models/best_model.pth \
        thermal_topic:=/flir/image_raw rgb_topic:=/camera/color/image_raw calibration:=/cfg/rig.yaml

Empty arguments leave the parameter file's value in place. ``lifecycle:=true`` starts the managed variant
(``psfusion_lifecycle_node``, same name, topics and parameters); with ``autostart:=true`` (the default) the launch
configures it and activates it once it is inactive, so it behaves like the plain node; ``autostart:=false`` leaves
the transitions to a lifecycle manager (e.g. Nav2's lifecycle_manager with ``node_names: [psfusion]``).
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
    "thermal_transport": ("", "raw | compressed (subscribes <thermal_topic>/compressed)"),
    "rgb_transport": ("", "raw | compressed (subscribes <rgb_topic>/compressed)"),
    "lifecycle": ("false", "true: the managed (lifecycle) node psfusion_lifecycle_node"),
    "autostart": ("true", "with lifecycle:=true, configure and activate at launch"),
}
# launch argument → node parameter it overrides when non-empty
OVERRIDES = {
    "checkpoint": "checkpoint",
    "calibration": "registration.calibration_file",
    "device": "device",
    "backend": "backend",
    "thermal_transport": "thermal.transport",
    "rgb_transport": "rgb.transport",
}


def _true(text):
    return text.strip().lower() in ("true", "1", "yes")


def _node(context, *_):
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    params_file = value["params_file"] or (
        FindPackageShare("psfusion_ros").perform(context) + "/config/psfusion.yaml"
    )
    overrides = {param: value[arg] for arg, param in OVERRIDES.items() if value[arg]}
    node_args = dict(
        package="psfusion_ros",
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
    if not _true(value["lifecycle"]):
        return [Node(executable="psfusion_node", **node_args)]
    return _lifecycle(node_args, _true(value["autostart"]))


def _lifecycle(node_args, autostart):
    """The managed node; with autostart, configure now and activate once it reports 'inactive'."""
    from launch.actions import EmitEvent, RegisterEventHandler
    from launch.events import matches_action
    from launch_ros.actions import LifecycleNode
    from launch_ros.event_handlers import OnStateTransition
    from launch_ros.events.lifecycle import ChangeState
    from lifecycle_msgs.msg import Transition

    node = LifecycleNode(executable="psfusion_lifecycle_node", **node_args)
    if not autostart:
        return [node]

    def change(transition):
        return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition))

    activate = RegisterEventHandler(OnStateTransition(target_lifecycle_node=node, start_state="configuring",
                                                      goal_state="inactive",
                                                      entities=[change(Transition.TRANSITION_ACTIVATE)]))
    return [node, activate, change(Transition.TRANSITION_CONFIGURE)]


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_node)]
    )
