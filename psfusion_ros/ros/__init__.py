"""ROS 2 layer: message conversion, the node, diagnostics. Only node.py imports rclpy."""
