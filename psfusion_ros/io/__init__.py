"""Bytes in and out, without ROS or torch: sensor_msgs/Image ↔ numpy (``image_codec``), rosbag2 files (``bags``),
image folders (``image_files``). Import the submodule you need; this package imports nothing by itself."""
