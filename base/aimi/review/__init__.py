"""The review loop of the paper's method: choose the cases worth a reviewer's time (`aimi review select`)."""
