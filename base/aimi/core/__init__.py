"""The framework: cases and their artifacts, ports, the module contract, workflows and the runner."""
