"""File formats and bytes on disk: the safetensors reader and writer, model folders, content
hashes, atomic writes and the weights file."""
