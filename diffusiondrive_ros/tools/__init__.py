"""Offline tools (synthetic data, bag utilities) that need neither rclpy nor torch."""
