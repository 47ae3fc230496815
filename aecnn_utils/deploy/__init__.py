"""A finished run in use: ONNX export and int8, ``predict``, ``evaluate`` on another folder, and
the speed benchmark."""
