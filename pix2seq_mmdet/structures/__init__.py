"""Data structures shared by the model and the torch-free runtime (numpy and pycocotools only)."""
