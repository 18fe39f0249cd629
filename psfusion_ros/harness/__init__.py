"""Drives and process harnesses shared by the demo, the benchmarks and the tests (not used by the node).

``synthetic``: deterministic visible + thermal scenes; ``node_process``: start/stop ``psfusion_node`` as a
child process on a private ROS domain; ``drive_player``: play a drive into a running node over rclpy and
record what it publishes. Only ``drive_player`` imports rclpy.
"""
