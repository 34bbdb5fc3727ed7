"""Image tools (skopeo/umoci jobs): references, platforms, layouts, unpacking."""
