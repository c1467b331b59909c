raise RuntimeError("broken module")
