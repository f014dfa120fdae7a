"""Reading an environment (ours, or anyone's) into a typed snapshot that checks look at."""
