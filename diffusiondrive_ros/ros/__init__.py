"""ROS layer: message decoding, RViz markers, input synchronisation, pipeline, parameters, diagnostics, node."""
